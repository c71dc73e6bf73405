"""The fixed recipes a search starts from (``--warm-start``)."""

from __future__ import annotations

from search.config import RunConfig
from search.driver.setup import strategy_names
from spaces.strategies import STRATEGIES, default_strategies
from tests.spaces.test_strategies import _space


def test_warm_start_picks_the_recipes_a_search_starts_from(tiny_cnn):
    space = _space(tiny_cnn, ["fp32", "fp16", "int8"])
    assert strategy_names(RunConfig(), space) == default_strategies(space)
    every = strategy_names(RunConfig(warm_start="all"), space)
    assert every[0] == "uncompressed" and set(every) == set(STRATEGIES.names())
    alone = strategy_names(RunConfig(strategies=("int8-ort",), search=False), space)
    assert alone == ["uncompressed", "int8-ort"]
