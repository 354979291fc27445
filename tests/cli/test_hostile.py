"""A corpus of bad inputs through the real entry point: each is exit 2, one error line (plus an
optional hint), no traceback, nothing written, inputs unchanged, within 10 s."""
from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from cli.main import main
from tests import forge
from tests.conftest import tiny_recipe


@dataclass
class Env:
    root: Path
    base: Path  # a trained artifact (the session baseline, copied in)

    def recipe(self, raw: dict | None = None, name: str = "r.yaml", text: str | None = None) -> str:
        path = self.root / name
        path.write_text(text if text is not None else yaml.safe_dump(raw or tiny_recipe(self.root)))
        return str(path)

    def pipeline(self, *stages, **over) -> str:
        return self.recipe(tiny_recipe(self.root, pipeline=[*stages, "evaluate"], **over))

    def file(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return str(self.root / name)


Case = Callable[[Env], list[str]]
TRAIN = {"train": {"epochs": 1}}


def _eval(path: Callable[[Env], str]) -> Case:
    return lambda e: ["eval", path(e), "-r", e.recipe(), "-q"]


def _state_dict_of(name: str) -> dict:
    from compress.models import build_model

    return build_model(name, {}).state_dict()


def _torch_file(e: Env, name: str, obj: object) -> str:
    torch.save(obj, e.root / name)
    return str(e.root / name)


def _nan_state(e: Env) -> str:
    state = _state_dict_of("mnist-cnn")
    state["0.weight"][0, 0, 0, 0] = float("inf")
    return _torch_file(e, "nan.pt", state)


def _safetensors_as_mzip(e: Env) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _state_dict_of("lenet-300-100").items()}, str(e.root / "st.mzip"))
    return str(e.root / "st.mzip")


RECIPES: dict[str, Case] = {
    "missing": lambda e: ["validate", str(e.root / "nope.yaml")],
    "directory": lambda e: ["validate", str(e.root)],
    "binary": lambda e: ["validate", e.file("b.yaml", b"\x89PNG\r\n\x1a\n\x00\x00")],
    "not-utf8": lambda e: ["validate", e.file("l.yaml", "model: {name: caf\u00e9}".encode("latin-1"))],
    "empty": lambda e: ["validate", e.recipe(text="")],
    "list": lambda e: ["validate", e.recipe(text="- a\n- b\n")],
    "bad-yaml": lambda e: ["validate", e.recipe(text="model: [unclosed\n")],
    "alias-bomb": lambda e: ["validate", e.recipe(text="\n".join(
        ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]"
                                                   for i in range(1, 9)]) + "\nmodel: {name: *a8}\n")],
    "huge": lambda e: ["validate", e.file("h.yaml", b"#" * (1 << 21))],
    "unknown-key": lambda e: ["validate", e.recipe({**tiny_recipe(e.root), "modle": 1})],
    "unknown-stage": lambda e: ["validate", e.pipeline({"trian": {}})],
    "epochs-type": lambda e: ["validate", e.pipeline({"train": {"epochs": "big"}})],
    "lr-inf": lambda e: ["validate", e.pipeline({"train": {"lr": float("inf")}})],
    "lr-nan": lambda e: ["validate", e.pipeline({"train": {"lr": float("nan")}})],
    "epochs-negative": lambda e: ["validate", e.pipeline({"train": {"epochs": -3}})],
    "seed-huge": lambda e: ["validate", e.recipe(tiny_recipe(e.root, seed=2 ** 70))],
    "device": lambda e: ["validate", e.recipe(tiny_recipe(e.root, device="tpu"))],
    "model-name": lambda e: ["validate", e.recipe(tiny_recipe(e.root, model={"name": "lenet300"}))],
    "model-import-form": lambda e: ["validate", e.recipe(tiny_recipe(e.root, model={"name": "a b:c d"}))],
    "torchvision-arch": lambda e: ["validate", e.recipe(tiny_recipe(e.root, model={"name": "torchvision:resnet19"}))],
    "dataset": lambda e: ["validate", e.recipe(tiny_recipe(e.root, data={"name": "mnsit"}))],
    "optimizer": lambda e: ["validate", e.pipeline({"train": {"optimizer": "adamm"}})],
    "prune-rate": lambda e: ["validate", e.pipeline(TRAIN, {"prune": {"rate": 100}})],
    "bits": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 9}})],
    "layer-bits": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 4, "layer_bits": {"0": 12}}})],
    "one-bit-symmetric": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 1}})],
    "kmeans-range": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 2, "method": "kmeans",
                                                                          "range": "mse"}})],
    "channel-gradual": lambda e: ["validate", e.pipeline(TRAIN, {"prune": {"rate": 50, "granularity": "channel",
                                                                          "schedule": "gradual"}})],
    "prune-after-kmeans": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 2, "method": "kmeans"}},
                                                            {"prune": {"rate": 50}})],
    "channel-after-quantize": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 8}},
                                                                {"prune": {"rate": 50, "granularity": "channel"}})],
    "two-quantize": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 8}}, {"quantize": {"bits": 4}})],
    "val-split": lambda e: ["validate", e.recipe(tiny_recipe(e.root, pipeline=[TRAIN, {"evaluate": {"split": "val"}}]))],
    "distill-first": lambda e: ["validate", e.pipeline(TRAIN, {"finetune": {"distill": 0.5}})],
    "int8-cuda": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 8, "execute": "int8"}},
                                                   device="cuda")],
    "no-rate": lambda e: ["validate", e.pipeline(TRAIN, {"prune": {}})],
    "no-bits": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {}})],
    "empty-pipeline": lambda e: ["validate", e.recipe(tiny_recipe(e.root, pipeline=[]))],
    "two-kinds": lambda e: ["validate", e.recipe(tiny_recipe(e.root, pipeline=[{"train": {}, "evaluate": {}}]))],
    "pipeline-type": lambda e: ["validate", e.recipe(tiny_recipe(e.root, pipeline="train"))],
    "granularity": lambda e: ["validate", e.pipeline(TRAIN, {"prune": {"rate": 5, "granularity": "chanel"}})],
    "quant-method": lambda e: ["validate", e.pipeline(TRAIN, {"quantize": {"bits": 4, "method": "kmean"}})],
    "max-drop": lambda e: ["validate", e.recipe(tiny_recipe(e.root, constraints={"max_accuracy_drop": -1}))],
    "prune-share": lambda e: ["validate", e.recipe(tiny_recipe(e.root, constraints={"prune_share": 0}))],
    "val-fraction": lambda e: ["validate", e.recipe(tiny_recipe(e.root, data={"name": "digits",
                                                                              "val_fraction": 1.0}))],
    "nul-byte": lambda e: ["validate", e.file("n.yaml", b"model: {name: mnist-cnn}\x00\n")],
    "run-missing": lambda e: ["run", str(e.root / "nope.yaml"), "-q"],
    "classes-do-not-fit": lambda e: ["run", e.recipe(tiny_recipe(e.root, model={"name": "mnist-cnn",
                                                                               "kwargs": {"num_classes": 5}})), "-q"],
    "channels-do-not-fit": lambda e: ["run", e.recipe(tiny_recipe(e.root, model={"name": "resnet20",
                                                                                "kwargs": {"in_channels": 3}})), "-q"],
}

CHECKPOINTS: dict[str, Case] = {
    "ckpt-missing": _eval(lambda e: str(e.root / "nope.pt")),
    "ckpt-directory": _eval(lambda e: str(e.root)),
    "ckpt-fifo": _eval(lambda e: str(forge.fifo(e.root / "p.pt"))),
    "ckpt-chardev": _eval(lambda e: "/dev/null"),
    "ckpt-empty": _eval(lambda e: e.file("e.pt", b"")),
    "ckpt-random": _eval(lambda e: e.file("r.pt", os.urandom(4096))),
    "ckpt-random-mzip": _eval(lambda e: e.file("r.mzip", os.urandom(4096))),
    "ckpt-safetensors-as-mzip": _eval(_safetensors_as_mzip),
    "ckpt-pickled-module": _eval(lambda e: _torch_file(e, "m.pt", torch.nn.Linear(2, 2))),
    "ckpt-other-arch": _eval(lambda e: _torch_file(e, "o.pt", _state_dict_of("lenet-300-100"))),
    "ckpt-non-finite": _eval(_nan_state),
    "ckpt-truncated": _eval(lambda e: e.file("t.pt", Path(_torch_file(e, "full.pt", _state_dict_of("mnist-cnn")))
                                             .read_bytes()[:5000])),
    "ckpt-text": _eval(lambda e: e.file("x.pt", b"hello, this is text\n")),
    "ckpt-png": _eval(lambda e: e.file("img.pt", b"\x89PNG\r\n\x1a\n" + os.urandom(64))),
    "ckpt-json": _eval(lambda e: e.file("j.pt", b'{"a": [1, 2, 3]}')),
    "ckpt-list": _eval(lambda e: _torch_file(e, "l.pt", [torch.zeros(2)])),
}

ARTIFACTS: dict[str, Case] = {
    "art-truncated": lambda e: ["eval", e.file("t.mzip", e.base.read_bytes()[:-500]), "-q"],
    "art-bitflip": lambda e: ["eval", e.file("f.mzip", bytes(_flip(e.base.read_bytes()))), "-q"],
    "art-version": lambda e: ["eval", e.file("v.mzip", e.base.read_bytes().replace(b'\\"version\\":3',
                                                                                   b'\\"version\\":9')), "-q"],
    "art-spec-this": lambda e: ["eval", str(forge.reassemble(e.base, e.root / "this.mzip",
                                                             spec=forge.ModelSpec("this:x"))), "-q"],
    "art-spec-os": lambda e: ["eval", str(forge.reassemble(e.base, e.root / "os.mzip",
                                                           spec=forge.ModelSpec("os:system"))), "-q"],
    "art-spec-weights": lambda e: ["eval", str(forge.reassemble(
        e.base, e.root / "w.mzip", spec=forge.ModelSpec("torchvision:resnet18", {"weights": "IMAGENET1K_V1"}))), "-q"],
    "art-lzma-bomb": lambda e: ["eval", str(forge.lzma_bomb(e.base, e.root / "bomb.mzip")), "-q"],
    "art-shape-inflation": lambda e: ["eval", str(forge.shape_inflation(e.base, e.root / "big.mzip")), "-q"],
    "art-non-finite": lambda e: ["eval", str(forge.nan_weights(e.base, e.root / "nan.mzip")), "-q"],
    "inspect-directory": lambda e: ["inspect", str(e.root)],
    "inspect-missing": lambda e: ["inspect", str(e.root / "nope.mzip")],
    "inspect-random": lambda e: ["inspect", e.file("r.mzip", os.urandom(2048))],
    "inspect-fifo": lambda e: ["inspect", str(forge.fifo(e.root / "p.mzip"))],
}

OUTPUTS: dict[str, Case] = {
    "json-is-recipe": lambda e: ["run", e.recipe(), "--json", str(e.root / "r.yaml"), "-q"],
    "json-is-checkpoint": lambda e: ["run", e.recipe(), "-c", str(e.base), "--json", str(e.base), "-q"],
    "json-directory": lambda e: ["run", e.recipe(), "--json", str(e.root), "-q"],
    "json-fifo": lambda e: ["run", e.recipe(), "--json", str(forge.fifo(e.root / "j.fifo")), "-q"],
    "json-symlink": lambda e: ["run", e.recipe(), "--json", _symlink(e), "-q"],
    "json-under-file": lambda e: ["run", e.recipe(), "--json", str(Path(e.file("f", b"x")) / "r.json"), "-q"],
    "output-is-file": lambda e: ["run", e.recipe(), "-o", e.file("afile", b"x"), "-q"],
    "output-dev-full": lambda e: ["run", e.recipe(), "-o", "/dev/full", "-q"],
    "output-artifact-is-dir": lambda e: ["run", e.recipe(), "-o", _dir_named_model(e), "-q"],
    "output-is-input": lambda e: ["run", e.recipe(), "-c", _as_model_mzip(e), "-o", str(e.root / "in"), "-q"],
    "init-directory": lambda e: ["init", str(e.root)],
    "init-fifo": lambda e: ["init", str(forge.fifo(e.root / "i.fifo"))],
    "plot-directory": lambda e: ["sensitivity", "-r", e.recipe(), "--plot", str(e.root), "-q"],
    "eval-json-is-checkpoint": lambda e: ["eval", str(e.base), "--json", str(e.base), "-q"],
    "export-to-directory": lambda e: ["export", str(e.base), "-o", str(e.root), "-q"],
    "export-to-input": lambda e: ["export", str(e.base), "-o", str(e.base), "-q"],
    "export-missing-model": lambda e: ["export", str(e.root / "nope.mzip"), "-q"],
}

FLAGS: dict[str, Case] = {
    "rate-not-a-number": lambda e: ["prune", "--rate", "abc", "-r", e.recipe()],
    "method-unknown": lambda e: ["prune", "--rate", "50", "--method", "l2", "-r", e.recipe()],
    "device-unknown": lambda e: ["run", e.recipe(), "--device", "tpu", "-q"],
    "set-no-equals": lambda e: ["run", e.recipe(), "--set", "train.epochs", "-q"],
    "set-bad-key": lambda e: ["run", e.recipe(), "--set", "a..b=1", "-q"],
    "rates-not-numbers": lambda e: ["sensitivity", "-r", e.recipe(), "--rates", "50,abc", "-q"],
    "rates-nan": lambda e: ["sensitivity", "-r", e.recipe(), "--rates", "50,nan", "-q"],
    "sweep-one-bit": lambda e: ["sweep", "-r", e.recipe(), "--bits", "1", "-q"],
    "finetune-negative": lambda e: ["prune", "--rate", "50", "--finetune-epochs", "-1", "-r", e.recipe(), "-q"],
    "max-drop-negative": lambda e: ["prune", "--max-drop", "-1", "-r", e.recipe(), "-q"],
    "prune-missing-checkpoint": lambda e: ["prune", "--rate", "50", "-c", str(e.root / "nope.mzip"), "-r",
                                           e.recipe(), "-q"],
    "unknown-command": lambda e: ["compres"],
    "quantize-bits-range": lambda e: ["quantize", "--bits", "0", "-r", e.recipe(), "-q"],
    "export-pt2-int8": lambda e: ["export", str(e.base), "--format", "pt2", "--int8", "-q"],
    "export-batch-word": lambda e: ["export", str(e.base), "--batch", "many", "-q"],
    "export-batch-zero": lambda e: ["export", str(e.base), "--batch", "0", "-q"],
    "export-format": lambda e: ["export", str(e.base), "--format", "tflite"],
    "run-export-format": lambda e: ["run", e.recipe(), "--export", "tflite", "-q"],
}


def _images(e: Env, corrupt: str | None = None, empty: bool = False) -> dict:
    """A recipe on a small ImageFolder (3×28×28 for mnist-cnn), streamed; ``corrupt`` names a file to spoil."""
    from PIL import Image

    for part in ("train", "val"):
        for label in ("a", "b"):
            folder = e.root / "imgs" / part / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(0 if empty and part == "train" else 4):
                Image.new("RGB", (28, 28), (60 * i, 100, 30)).save(folder / f"{i}.png")
    if corrupt:
        (e.root / "imgs" / corrupt).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8)
    raw = tiny_recipe(e.root)
    raw["data"] = {"name": "imagefolder", "root": str(e.root / "imgs"), "image_size": 28, "in_memory": False,
                   "workers": 0}
    raw["pipeline"] = [{"train": {"epochs": 1, "batch_size": 3}}]
    return raw


def _with(raw: dict, **model: object) -> dict:
    return {**raw, "model": {**raw["model"], **model}}


DATA: dict[str, Case] = {
    "imagefolder-no-images": lambda e: ["run", e.recipe(_images(e, empty=True)), "-q"],
    "imagefolder-corrupt-mid-epoch": lambda e: ["run", e.recipe(_images(e, corrupt="train/b/2.png")), "-q"],
    "weights-unknown-name": lambda e: ["run", e.recipe(_with(tiny_recipe(e.root), name="torchvision:resnet18",
                                                             weights="IMAGENET9K")), "-q"],
    "weights-not-torchvision": lambda e: ["run", e.recipe(_with(tiny_recipe(e.root), weights="DEFAULT")), "-q"],
    "weights-missing-file": lambda e: ["run", e.recipe(_with(tiny_recipe(e.root), name="torchvision:resnet18",
                                                             weights=str(e.root / "gone.pth"))), "-q"],
    "fp16-on-cpu": lambda e: ["run", e.recipe({**tiny_recipe(e.root), "pipeline": [
        {"train": {"epochs": 1, "precision": "fp16"}}]}), "-q"],
    "augment-without-transforms": lambda e: ["validate", e.recipe({**tiny_recipe(e.root), "data": {
        "name": "digits", "augment": True, "transforms": "none"}})],
}

CORPUS = {**RECIPES, **CHECKPOINTS, **ARTIFACTS, **OUTPUTS, **FLAGS, **DATA}


def _flip(data: bytes) -> bytearray:
    buf = bytearray(data)
    buf[-100] ^= 0x10
    return buf


def _symlink(e: Env) -> str:
    target = Path(e.file("target.json", b"{}"))
    (e.root / "link.json").symlink_to(target)
    return str(e.root / "link.json")


def _as_model_mzip(e: Env) -> str:
    (e.root / "in").mkdir()
    return e.file("in/model.mzip", e.base.read_bytes())


def _dir_named_model(e: Env) -> str:
    (e.root / "o" / "model.mzip").mkdir(parents=True)
    return str(e.root / "o")


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[str(path)] = "dir" if stat.S_ISDIR(mode) else "special"
    return out


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 80


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, tmp_path, cnn_base, capsys, monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    env = Env(work, work / "base.mzip")
    env.base.write_bytes(cnn_base.read_bytes())
    monkeypatch.chdir(work)
    argv = CORPUS[name](env)
    before = _snapshot(work)
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err
    assert len(lines) == 1 or lines[1].startswith("  hint: "), err
    assert "Traceback" not in out + err
    assert _snapshot(work) == before, "something was written or changed"
    assert elapsed < 10
