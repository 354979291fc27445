import pytest
import torch

from compress.data import iter_batches, load_dataset, random_crop_flip
from compress.errors import DataError
from compress.recipe import DataConfig
from tests.conftest import write_idx


def test_digits_is_mnist_shaped_and_deterministic():
    a, b = load_dataset(DataConfig(name="digits")), load_dataset(DataConfig(name="digits"))
    assert a.input_shape == (1, 28, 28) and a.num_classes == 10
    assert len(a.train) + len(a.test) == 1797 and len(a.test) == 360
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    assert abs(float(a.train.x.mean())) < 1e-4  # normalized with train statistics


def test_val_split_is_carved_from_train():
    ds = load_dataset(DataConfig(name="digits", val_fraction=0.2))
    assert ds.val is not None and len(ds.val) == int(1437 * 0.2)
    assert len(ds.train) + len(ds.val) == 1437


def test_mnist_loader_reads_idx_files(tmp_path):
    write_idx(tmp_path, n_train=40, n_test=20)
    ds = load_dataset(DataConfig(name="mnist", root=str(tmp_path)))
    assert ds.train.x.shape == (40, 1, 28, 28) and ds.test.x.shape == (20, 1, 28, 28)
    assert ds.train.y.dtype == torch.int64 and int(ds.train.y.max()) < 10


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path / "nowhere")))
    assert str(tmp_path / "nowhere") in str(info.value) and "download" in str(info.value)


def test_batches_cover_split_once():
    ds = load_dataset(DataConfig(name="digits"))
    seen = torch.cat([y for _, y in iter_batches(ds.test, 64, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(seen.sort().values, ds.test.y.sort().values)


def test_random_crop_flip_keeps_shape_and_content_scale():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.max()) <= float(x.max())


def test_imagefolder_reads_train_and_val(tmp_path):
    from PIL import Image

    for part in ("train", "val"):
        for label, color in (("cat", 30), ("dog", 220)):
            folder = tmp_path / part / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 30), (color, color, i)).save(folder / f"{i}.png")
    ds = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16))
    assert ds.train.x.shape == (6, 3, 16, 16) and ds.num_classes == 2 and len(ds.test) == 6


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)))
