"""The benchmarks' hypervolume: the area a front dominates inside the reference box."""

from __future__ import annotations

import pytest

from bench.common import Point, curve, hypervolume

REF = Point(accuracy=90.0, latency=1.0)


def test_one_point_is_its_rectangle():
    assert hypervolume([Point(95.0, 0.4)], REF) == pytest.approx(5.0 * 0.6)


def test_dominated_and_outside_points_add_nothing():
    front = [Point(95.0, 0.4), Point(92.0, 0.2)]
    base = hypervolume(front, REF)
    assert base == pytest.approx(5.0 * 0.6 + 2.0 * 0.2)
    assert hypervolume([*front, Point(94.0, 0.5), Point(89.0, 0.1), Point(99.0, 1.2)], REF) == pytest.approx(base)


def test_curve_counts_failed_trials_against_the_budget():
    points = [Point(95.0, 0.4), None, Point(92.0, 0.2)]
    assert curve(points, REF, [1, 2, 3, 4]) == pytest.approx({1: 3.0, 2: 3.0, 3: 3.4})
