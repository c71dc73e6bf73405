from __future__ import annotations

import pytest
import torch

from core.errors import UserError
from search.models import build_model, check_model_name, load_checkpoint


@pytest.mark.parametrize("name", ["small_cnn", "hl_cnn", "resnet10t"])
def test_models_build_and_run(name):
    model = build_model(name, num_classes=7).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


def test_hl_cnn_has_its_parts():
    model = build_model("hl_cnn", 10)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"DepthwiseSeparable", "Bottleneck", "SqueezeExcite"} <= kinds
    assert model.alpha.requires_grad and model.beta.requires_grad


def test_unknown_model_lists_close_names():
    with pytest.raises(UserError, match=r"unknown model 'mobilenetv2_10'.*mobilenetv2_100"):
        check_model_name("mobilenetv2_10")


def test_checkpoint_loading(tmp_path):
    model = build_model("small_cnn", 10)
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    fresh = build_model("small_cnn", 10)
    load_checkpoint(fresh, path)
    assert torch.equal(fresh.fc.weight, model.fc.weight)
    with pytest.raises(UserError, match="does not fit the model"):
        load_checkpoint(build_model("hl_cnn", 10), path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read with weights_only=True"):
        load_checkpoint(fresh, tmp_path / "junk.pt")
    evil = tmp_path / "evil.pt"
    torch.save({"callable": print}, evil)  # arbitrary objects are refused by weights_only loading
    with pytest.raises(UserError, match="weights_only=True"):
        load_checkpoint(fresh, evil)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params_m, gmacs",
    [
        ("resnet50", 25.6, 4.1),
        ("mobilenetv2_100", 3.5, 0.30),
        ("efficientnet_lite0", 4.65, 0.40),
        ("resnet18", 11.7, 1.8),
        ("squeezenet1_1", 1.24, 0.35),  # torchvision's, by its plain name (timm has none)
        ("torchvision:shufflenet_v2_x1_0", 2.3, 0.15),
    ],
)
def test_counts_at_224_match_the_published_figures(name, params_m, gmacs):
    """Parameters and multiply-accumulates of the seed study's models, built with random weights, within 5%."""
    from evaluators.graph import read_graph
    from search.models import model_graph

    graph = read_graph(model_graph(name, None, 224))
    assert graph.params / 1e6 == pytest.approx(params_m, rel=0.05)
    assert graph.macs / 1e9 == pytest.approx(gmacs, rel=0.05)
