"""Nothing lost, nothing leaked: atomic writes under SIGKILL, Ctrl-C, one writer per folder, the umask,
byte-identical artifacts, and bounded memory on hostile files (measured in a child process)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import compress
from compress.errors import InputError
from compress.files import FolderLock, write_atomic
from tests import forge
from tests.conftest import from_checkpoint, tiny_recipe

ROOT = Path(__file__).resolve().parent.parent
GIB = 1 << 30


def _child(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# A small middleman measures the CLI's own peak: a child forked straight from pytest would start with
# pytest's resident memory counted in its ru_maxrss.
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-m', 'cli.main', *sys.argv[1:]], stderr=subprocess.PIPE, text=True)\n"
            "err = p.stderr.read()\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "sys.stderr.write(err)\n"
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)\n")


def _peak_rss(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """Run the real entry point in a grandchild: its exit code, stderr and peak RSS in bytes."""
    proc = _child(["-c", _MEASURE, *args], cwd)
    out, err = proc.communicate(timeout=120)
    code, rss = (int(v) for v in out.split()[-2:])
    return code, err, rss


@pytest.mark.slow
@pytest.mark.parametrize("make", ["lzma_bomb", "shape_inflation"])
def test_hostile_artifacts_are_refused_within_time_and_memory(tmp_path, cnn_base, make):
    bad = getattr(forge, make)(cnn_base, tmp_path / "bad.mzip")
    for command in (["eval", str(bad), "-q"], ["inspect", str(bad)]):
        start = time.perf_counter()
        code, err, rss = _peak_rss(command, tmp_path)
        assert time.perf_counter() - start < 10
        assert rss < GIB, f"{command[0]}: peak RSS {rss / 2**20:.0f} MB (torch's import alone is most of it)"
        if command[0] == "eval":
            assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_yaml_bomb_is_refused_within_time_and_memory(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "r.yaml").write_text("\n".join(levels) + "\nmodel: {name: *a9}\n")
    code, err, rss = _peak_rss(["validate", "r.yaml"], tmp_path)
    assert code == 2 and "expands to more than" in err and rss < GIB


def test_sigkill_during_a_write_never_leaves_a_partial_file_and_the_next_run_cleans_up(tmp_path):
    target = tmp_path / "out" / "model.mzip"
    target.parent.mkdir()
    target.write_bytes(b"the old artifact")
    code = ("import sys, time; from pathlib import Path; from compress.files import write_atomic\n"
            "import os\n"
            "os.fsync = lambda fd: (print('writing', flush=True), time.sleep(60))\n"
            f"write_atomic(Path({str(target)!r}), b'x' * (8 << 20))\n")
    proc = _child(["-c", code], tmp_path)
    assert proc.stdout.readline().strip() == "writing"  # the data is in the temporary file, not yet renamed
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_bytes() == b"the old artifact"
    leftovers = list(target.parent.glob(".model.mzip.*.tmp"))
    assert leftovers, "the kill should have left the temporary file"
    with FolderLock(target.parent, ("model.mzip", "model.over-budget.mzip")):
        assert not list(target.parent.glob(".model.mzip.*.tmp"))


def test_a_forked_child_that_outlives_the_run_does_not_hold_its_folder(tmp_path):
    lock = FolderLock(tmp_path / "out").acquire()
    ready, say = os.pipe()
    child = os.fork()
    if child == 0:  # a DataLoader worker, say, still alive after its run ended
        os.write(say, b"1")  # the fork's callbacks have run by now
        time.sleep(3)
        os._exit(0)
    try:
        os.read(ready, 1)
        lock.release()
        with FolderLock(tmp_path / "out"):  # a new run, while the child lives
            pass
    finally:
        os.waitpid(child, 0)
        os.close(ready)
        os.close(say)


@pytest.mark.slow
@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "main-process-only"])
def test_interrupting_a_streamed_run_is_one_line_and_its_workers_never_hold_the_folder(tmp_path, group):
    raw = tiny_recipe(tmp_path, pipeline=[{"train": {"epochs": 50, "batch_size": 16}}, "evaluate"])
    raw["data"] = {"name": "digits", "in_memory": False, "workers": 2}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    proc = _child(["-m", "cli.main", "run", "r.yaml", "-q"], tmp_path, start_new_session=True)
    time.sleep(5.0)  # training, workers running
    if group:
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    else:
        proc.send_signal(signal.SIGINT)  # the workers notice their parent is gone only seconds later
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines() == ["interrupted"], err
    with FolderLock(tmp_path / "out"):  # at once: a worker that outlives its run never holds the lock
        pass


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.8, 4.0])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, delay):
    raw = tiny_recipe(tmp_path, pipeline=[{"train": {"epochs": 50, "batch_size": 16}}, "evaluate"])
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    proc = _child(["-m", "cli.main", "run", "r.yaml", "-q"], tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines() == ["interrupted"], err
    assert not (tmp_path / "out" / "model.mzip").exists()


def test_a_second_writer_into_the_same_folder_is_refused_naming_the_first(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base)
    with FolderLock(tmp_path / "out"):
        with pytest.raises(InputError, match=r"output folder .* is in use by modelzip run pid \d+"):
            compress.run(compress.load_recipe(raw))
    assert compress.run(compress.load_recipe(raw)).output.is_file()  # released: the folder is free again


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640


@pytest.mark.slow
def test_the_same_recipe_and_seed_give_a_byte_identical_artifact(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 50}}, {"finetune": {"epochs": 1}})
    first = compress.run(compress.load_recipe(raw)).output.read_bytes()
    second = compress.run(compress.load_recipe(raw)).output
    assert first == second.read_bytes()
    report = compress.artifact.read_header(second).manifest["report"]
    assert all(r["latency_ms"] is None and r["seconds"] is None for r in report["rows"])
