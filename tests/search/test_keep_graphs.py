"""`--keep-graphs front`: the graphs of trials off the front are deleted, the front's and the strategies' kept."""

from __future__ import annotations

import optuna

from search.driver.run import drop_graphs


def test_only_front_and_strategy_graphs_are_kept(tmp_path):
    folder = tmp_path / "trials"
    folder.mkdir()
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, (values, strategy) in enumerate([((0.9, 2.0), "uncompressed"), ((0.8, 3.0), ""), ((0.95, 1.0), "")]):
        graph = folder / f"{number:05d}.onnx"
        graph.write_bytes(b"graph")
        attrs = {"onnx": str(graph.resolve()), **({"baseline": strategy} if strategy else {})}
        study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs=attrs))
    assert drop_graphs(study, folder) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["00000.onnx", "00002.onnx"]
