from __future__ import annotations

import pytest

from spaces.plan import CompressionPlan, LayerPlan, PlanError, Recipe


def test_yaml_round_trip(tmp_path):
    plan = CompressionPlan({"a": LayerPlan(0.25, "int8"), "b": LayerPlan(0.0, "fp16")}, Recipe(finetune_epochs=1, seed=3))
    path = tmp_path / "plan.yaml"
    plan.to_yaml(path, source={"model": "small_cnn"})
    again, source = CompressionPlan.read_yaml(path)
    assert again == plan and source == {"model": "small_cnn"}
    assert again.layers_in("int8") == ["a"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("layers: [1, 2", "not valid YAML"),
        ("just a string", "needs a 'layers' mapping"),
        ("layers: {a: {prune_ratio: 0.1, precision: int4}}", "precision 'int4'"),
        ("layers: {a: {prune_ratio: 1.5}}", "outside [0, 1)"),
        ("layers: {a: {ratio: 0.1}}", "malformed plan entry"),
        ("layers: {a: {prune_ratio: abc}}", "malformed plan entry"),
        ("layers: {}\nextra: 1", "unknown plan keys: extra"),
    ],
)
def test_malformed_plans_raise(tmp_path, text, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace(")", r"\)")):
        CompressionPlan.read_yaml(path)
