"""Data sets of a study: what a ``--data`` value names (``DataSpec``), and its train/val/test splits loaded here.

The embedded default is scikit-learn's digits; Fashion-MNIST, MNIST and other IDX files, CIFAR-10/100 and image
folders are read from disk (``search.data.idx`` reads IDX files). Nothing is downloaded.
"""

from search.data.datasets import DataSpec, Splits, data_usage, load_splits, parse_data, stratified_split

__all__ = ["DataSpec", "Splits", "data_usage", "load_splits", "parse_data", "stratified_split"]
