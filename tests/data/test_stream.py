"""Streamed splits: the same samples as in memory, bounded decoding, files that cannot be read named."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compress.data import Split, StreamSplit, load_dataset
from compress.data import load as data_load
from compress.data.transforms import IMAGENET_MEAN
from compress.errors import DataError
from compress.recipe import DataConfig


def _folder(root: Path, parts: dict[str, dict[str, int]], size: tuple[int, int] = (40, 30)) -> Path:
    """``root/<part>/<class>/<i>.png``: solid images, one brightness per class."""
    from PIL import Image

    for part, classes in parts.items():
        for c, (label, count) in enumerate(classes.items()):
            folder = root / part / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", size, (40 + 150 * c, 90, 10 * i)).save(folder / f"{i}.png")
    return root


def test_streamed_digits_are_the_in_memory_samples(monkeypatch):
    monkeypatch.setattr(data_load, "STATS_SAMPLES", 10 ** 6)  # statistics over the whole split, as in memory
    memory = load_dataset(DataConfig(name="digits", val_fraction=0.1))
    streamed = load_dataset(DataConfig(name="digits", val_fraction=0.1, in_memory=False, workers=0))
    assert isinstance(memory.train, Split) and isinstance(streamed.train, StreamSplit) and streamed.streamed
    assert len(streamed.train) == len(memory.train) and len(streamed.val) == len(memory.val)
    for mine, theirs in ((streamed.train, memory.train), (streamed.val, memory.val), (streamed.test, memory.test)):
        (x, y), (x0, y0) = next(mine.batches(300)), next(theirs.batches(300))
        assert torch.equal(y, y0) and torch.allclose(x, x0, atol=1e-4)
    assert streamed.eval_batch_size == 64 and memory.eval_batch_size == 1000


def test_auto_streams_only_what_does_not_fit(monkeypatch):
    assert isinstance(load_dataset(DataConfig(name="digits")).train, Split)
    monkeypatch.setattr(data_load, "IN_MEMORY_BYTES", 1000)
    assert isinstance(load_dataset(DataConfig(name="digits", workers=0)).train, StreamSplit)
    assert isinstance(load_dataset(DataConfig(name="digits", in_memory=True)).train, Split)


def test_a_jobs_ranks_decode_their_shares_of_the_same_batches():
    data = load_dataset(DataConfig(name="digits", in_memory=False, workers=0))
    full = [y for _, y in data.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(3))]
    parts = [[y for _, y in data.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(3),
                                               part=(r, 2))] for r in (0, 1)]
    for whole, a, b in zip(full, *parts, strict=True):
        assert len(a) + len(b) == len(whole) and torch.equal(whole[0::2], a) and torch.equal(whole[1::2], b)


def test_imagefolder_streams_with_imagenet_preprocessing(tmp_path):
    root = _folder(tmp_path, {"train": {"cat": 5, "dog": 5, "eel": 4}, "val": {"dog": 3, "eel": 2}})
    cfg = DataConfig(name="imagefolder", root=str(root), image_size=16, transforms="imagenet", in_memory=False,
                     augment=True, workers=2)
    data = load_dataset(cfg)
    assert data.input_shape == (3, 16, 16) and data.num_classes == 3 and len(data.test) == 5
    assert sorted(data.test.head(5).y.tolist()) == [1, 1, 1, 2, 2]  # val numbered as train, though 'cat' is absent
    x, y = next(data.train.batches(14, shuffle=True, generator=torch.Generator().manual_seed(0), augment=True))
    assert x.shape == (14, 3, 16, 16) and sorted(y.tolist()) == [0] * 5 + [1] * 5 + [2] * 4
    # ImageNet statistics: the blue channel of a solid image is (10 i / 255 − mean) / std
    blue = data.test.head(1).x[0, 2, 0, 0]
    assert float(blue) == pytest.approx((0 - IMAGENET_MEAN[2]) / 0.225, abs=0.02)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_mid_epoch_stops_the_run_naming_the_file(tmp_path, workers):
    root = _folder(tmp_path, {"train": {"cat": 4, "dog": 4}, "val": {"cat": 1, "dog": 1}})
    bad = root / "train" / "dog" / "2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    data = load_dataset(DataConfig(name="imagefolder", root=str(root), image_size=8, in_memory=False,
                                   workers=workers, transforms="imagenet"))  # fixed statistics: nothing read yet
    with pytest.raises(DataError, match=r"cannot read .*dog/2\.png \(UnidentifiedImageError"):
        for _ in data.train.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)):
            pass


def test_folders_without_images_or_with_unknown_val_classes_are_refused(tmp_path):
    (tmp_path / "a" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "a" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="imagefolder: .*[Ff]ound no valid file"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "a")))
    root = _folder(tmp_path / "b", {"train": {"cat": 2}, "val": {"cat": 1, "owl": 1}})
    with pytest.raises(DataError, match="class folders that train/ lacks: owl"):
        load_dataset(DataConfig(name="imagefolder", root=str(root)))


def test_augment_without_transforms_is_a_contradiction():
    with pytest.raises(ValueError, match="augment: true asks for augmentation"):
        DataConfig(augment=True, transforms="none")


def test_a_streamed_run_fine_tunes_evaluates_and_reloads_exactly(tmp_path, cnn_base):
    import compress
    from tests.conftest import from_checkpoint

    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 50}},
                          {"finetune": {"epochs": 1, "max_steps": 4, "batch_size": 32}})
    raw["data"] = {"name": "digits", "in_memory": False, "workers": 2, "val_fraction": 0.2}
    res = compress.run(compress.load_recipe(raw))
    assert res.state.data.streamed and [r.stage for r in res.report.rows][:1] == ["checkpoint"]
    assert res.report.rows[-1].accuracy > 80.0
    x = res.state.data.test.head(16).x
    reloaded = compress.load(res.output)
    assert torch.equal(reloaded(x), res.model.cpu().eval()(x))


def test_searches_and_analyses_measure_on_calibration_samples(cnn_base, monkeypatch):
    import compress
    from compress.analysis.sensitivity import calibration_split
    from compress.context import RunContext
    from compress.evaluate import evaluate
    from compress.method import Workspace

    model = compress.load(cnn_base)
    whole = load_dataset(DataConfig(name="digits", val_fraction=0.2))
    assert whole.calibration_samples is None and len(calibration_split(whole)[0]) == len(whole.val)
    assert load_dataset(DataConfig(name="digits", in_memory=False, workers=0)).calibration_samples == 5000
    data = load_dataset(DataConfig(name="digits", val_fraction=0.2, calibration_samples=100))
    split, name = calibration_split(data)
    assert len(split) == 100 and name == "first 100 images of the validation split"
    import compress.method

    seen = []
    monkeypatch.setattr(compress.method, "evaluate", lambda m, split, *a: seen.append(len(split)) or evaluate(m, split, *a))
    ws = Workspace(data, RunContext(torch.device("cpu")))
    first = evaluate(model, data.test.first(100), 1000, torch.device("cpu")).accuracy
    assert ws.accuracy(model, "test") == first and seen == [100]  # a search's check: the first 100 test images


def test_streamed_evaluations_report_progress_and_in_memory_ones_stay_quiet(cnn_base):
    import compress
    from compress.evaluate import evaluate
    from compress.progress import Progress

    class Record(Progress):
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def start(self, label, total):
            self.calls.append(("start", label, total))

        def update(self, advance, **metrics):
            self.calls.append(("update", advance, sorted(metrics)))

        def stop(self):
            self.calls.append(("stop",))

    model, cpu = compress.load(cnn_base), torch.device("cpu")
    streamed = load_dataset(DataConfig(name="digits", in_memory=False, workers=0))
    seen = Record()
    res = evaluate(model, streamed.test, 100, cpu, progress=seen)
    assert seen.calls[0] == ("start", "evaluate", 4) and seen.calls[-1] == ("stop",)  # 360 images, batches of 100
    assert [c for c in seen.calls if c[0] == "update"] == [("update", 1, ["acc", "samples_per_s"])] * 4
    assert res.samples == 360
    quiet = Record()
    evaluate(model, load_dataset(DataConfig(name="digits")).test, 100, cpu, progress=quiet)
    assert quiet.calls == []
