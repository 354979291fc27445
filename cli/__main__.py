"""``python -m cli …`` (what ``torchrun -m cli`` starts on every rank)."""
from cli.main import run

run()
