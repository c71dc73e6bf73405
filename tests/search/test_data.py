from __future__ import annotations

import pickle

import numpy as np
import pytest

from core.errors import UserError
from search.data import DataSpec, load_splits, parse_data, stratified_split


def test_digits_split_is_stratified_seeded_and_disjoint():
    splits = load_splits(DataSpec(input_size=32))
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 1797 and sizes[1] == pytest.approx(360, abs=5)
    image, _ = splits.train[0]
    assert tuple(image.shape) == (3, 32, 32)
    labels = np.array([int(splits.val[i][1]) for i in range(len(splits.val))])
    assert np.bincount(labels).min() >= 30  # every class is in the validation split
    a = stratified_split(np.repeat(np.arange(3), 10), (0.2,), seed=1)
    b = stratified_split(np.repeat(np.arange(3), 10), (0.2,), seed=1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not set(a[0]) & set(a[1])


def _fake_cifar(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def test_cifar10_from_disk(tmp_path):
    _fake_cifar(tmp_path)
    spec = parse_data(f"cifar10:{tmp_path}", None, 0)
    splits = load_splits(spec)
    assert splits.num_classes == 10
    assert len(splits.train) + len(splits.val) == 100 and len(splits.test) == 20
    assert tuple(splits.test[0][0].shape) == (3, 32, 32)


def test_imagefolder_from_disk(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (40, 30), color=(i * 20, 0, 0)).save(folder / f"{i}.png")
    splits = load_splits(parse_data(f"imagefolder:{tmp_path}", 24, 0))
    assert splits.num_classes == 2 and len(splits.test) == 12
    assert tuple(splits.train[0][0].shape) == (3, 24, 24)


@pytest.mark.parametrize(
    "text, message",
    [
        ("svhn", "unknown data set 'svhn'"),
        ("cifar10", "needs a folder"),
        ("cifar10:/nonexistent/x", "cifar10 data not found"),
        ("imagefolder:/nonexistent/x", "needs train/"),
        ("digits:/tmp", "takes no path"),
    ],
)
def test_bad_data_arguments(text, message):
    with pytest.raises(UserError, match=message):
        parse_data(text, None, 0)


def test_imagefolder_without_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(UserError, match="one subfolder per class"):
        parse_data(f"imagefolder:{tmp_path}", None, 0)


class _Planted:
    """What a malicious CIFAR file would hold: unpickling it calls a function of the attacker's choosing."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_cifar_file_that_asks_for_code_is_refused_and_nothing_runs(tmp_path):
    import pytest

    from core.errors import UserError

    _fake_cifar(tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({b"data": _Planted(str(marker))}))
    with pytest.raises(UserError, match="asks for pathlib"):
        load_splits(parse_data(f"cifar10:{tmp_path}", None, 0))
    assert not marker.exists()
