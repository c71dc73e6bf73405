"""Prediction bands of bench/holdout.py: a band that includes the spread between publications covers a source it
never saw better than one built from the rows as they are, when one publication dominates the rows."""

from __future__ import annotations

import math

from bench.holdout import band_from, between_and_within, coverage


def residual(hw: str, source: str, ratio: float) -> dict[str, str]:
    """A residual row as bench/holdout.py writes it: predicted 1 ms, published ``1 / ratio`` ms."""
    return {"hw": hw, "source": source, "published_ms": str(1 / ratio), "predicted_ms": "1.0", "log_ratio": str(math.log(ratio))}


def test_between_and_within_weighs_every_publication_the_same():
    rows = [residual("a:cpu", "big", 1.0) for _ in range(8)] + [residual("a:cpu", "small", 2.0)]
    values = between_and_within(rows)
    assert len(values) == 2 * 9  # every publication's mean with every row's own deviation
    assert sorted({round(math.exp(v), 6) for v in values}) == [1.0, 2.0]  # no spread within: the two offsets
    assert sum(abs(v - math.log(2.0)) < 1e-9 for v in values) == 9  # half the mass on the small publication


def test_a_source_band_covers_new_publications_that_a_row_band_misses():
    # one large publication agrees with the model; three small ones are each off by their own factor
    rows = [residual("a:cpu", "large", 1.0 + 0.01 * i) for i in range(20)]
    rows += [residual("a:cpu", name, ratio) for name, ratio in (("s1", 1.5), ("s2", 0.7), ("s3", 1.4)) for _ in range(2)]
    by_rows = coverage(rows, "all", "rows")["cpu"]
    by_sources = coverage(rows, "all", "sources")["cpu"]
    assert by_sources[0] > by_rows[0] and by_rows[1] == by_sources[1] == len(rows)
    assert band_from(rows[:1], "rows") is None and band_from(rows[:20], "sources") is None  # too little to say
