from __future__ import annotations

import pytest
import torch

from spaces.analysis import analyse
from spaces.plan import CompressionPlan, LayerPlan, PlanError
from spaces.pruning import channels_to_keep, group_ratios, prune


def test_groups_couple_residual_and_fusion_layers(tiny_cnn, tiny_hlcnn):
    x = torch.zeros(1, 3, 16, 16)
    groups = {g.root: g.members for g in analyse(tiny_cnn, x).groups}
    # the stem feeds the residual add of stage1: they must shrink together
    assert set(groups["stem.0"]) == {"stem.0", "stage1.conv2.0"}
    assert analyse(tiny_cnn, x).classifier == "fc"
    hl = analyse(tiny_hlcnn, x)
    fused = next(g for g in hl.groups if "branch1.pw.0" in g.members)
    # alpha*F1 + beta*F2 couples the last conv of both branches
    assert "branch2.project.0" in fused.members
    assert all("classifier" not in g.members for g in hl.groups)


@pytest.mark.parametrize(
    "channels, ratio, round_to, keep", [(16, 0.5, 4, 8), (16, 0.3, 4, 12), (10, 0.75, 4, 4), (3, 0.75, 4, 3), (8, 0.9, 8, 8)]
)
def test_channels_to_keep(channels, ratio, round_to, keep):
    assert channels_to_keep(channels, ratio, round_to) == keep


def test_prune_removes_channels_and_keeps_the_model_running(tiny_hlcnn):
    x = torch.randn(2, 3, 16, 16)
    analysis = analyse(tiny_hlcnn, x)
    before = sum(p.numel() for p in tiny_hlcnn.parameters())
    prune(tiny_hlcnn, {g.root: 0.5 for g in analysis.groups}, x, round_to=4)
    after = sum(p.numel() for p in tiny_hlcnn.parameters())
    assert after < 0.5 * before
    assert tiny_hlcnn.branch1.pw[0].out_channels == tiny_hlcnn.branch2.project[0].out_channels == 16
    assert tiny_hlcnn(x).shape == (2, 10)


def test_prune_works_on_a_timm_model():
    import timm

    model = timm.create_model("mobilenetv3_small_050", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    analysis = analyse(model, x)
    before = sum(p.numel() for p in model.parameters())
    prune(model, {g.root: 0.5 for g in analysis.groups}, x, round_to=4)
    assert sum(p.numel() for p in model.parameters()) < before
    assert model(x).shape == (1, 10)


def test_coupled_layers_must_agree(tiny_cnn):
    analysis = analyse(tiny_cnn, torch.zeros(1, 3, 16, 16))
    layers = {name: LayerPlan() for name in analysis.layers}
    layers["stem.0"] = LayerPlan(0.5)
    with pytest.raises(PlanError, match="must share one prune ratio"):
        group_ratios(CompressionPlan(layers), analysis)
    layers["stage1.conv2.0"] = LayerPlan(0.5)
    assert group_ratios(CompressionPlan(layers), analysis)["stem.0"] == 0.5
    layers["fc"] = LayerPlan(0.5)
    with pytest.raises(PlanError, match="cannot be pruned"):
        group_ratios(CompressionPlan(layers), analysis)
