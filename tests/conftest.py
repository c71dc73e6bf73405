"""Shared fixtures: tiny models and data made here (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(autouse=True, scope="session")
def _host_profile(tmp_path_factory):
    """The tests' own ``host`` profile for this machine: the template, marked as built here (a stand-in for
    ``search calibrate --hw host``, which takes minutes; no test reads its numbers as this machine's truth).
    Subprocesses of the CLI inherit the cache folder."""
    from hw_profiles import load_profile_file
    from hw_profiles.host import CACHE_ENV, TEMPLATE, profile_path, this_machine
    from hw_profiles.writer import write_profile

    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    path = profile_path()
    path.parent.mkdir(parents=True)
    write_profile(load_profile_file(TEMPLATE).model_copy(update={"machine": this_machine()}), path)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """The embedded digits splits at 16x16 (small and fast)."""
    from search.data import DataSpec, load_splits

    return load_splits(DataSpec(input_size=16))


@pytest.fixture()
def tiny_cnn():
    """A small residual CNN with narrow layers, random weights, eval mode."""
    import torch

    from search.models.small_cnn import SmallCNN

    torch.manual_seed(0)
    return SmallCNN(num_classes=10, widths=(8, 16, 16)).eval()


@pytest.fixture()
def tiny_hlcnn():
    """The HL-CNN at width 8, random weights, eval mode."""
    import torch

    from search.models.hl_cnn import HLCNN

    torch.manual_seed(0)
    return HLCNN(num_classes=10, width=8).eval()


def randomise_batchnorm(model) -> None:
    """Give BatchNorm layers non-trivial statistics so folding them is actually tested."""
    import torch

    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
