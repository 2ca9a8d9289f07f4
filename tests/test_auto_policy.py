"""The offline detector study's pure helpers (`bench/auto_policy.py`) and the product defaults it chose."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from auto_policy import forecast_auc, switch_steps, worst_group_window  # noqa: E402

from lib_negative_delay.settings import DelaySettings  # noqa: E402

PRESENT = torch.tensor([True, False, True, False, False])


def test_a_signal_that_ranks_every_wearer_first_forecasts_perfectly() -> None:
    assert forecast_auc(torch.tensor([0.9, 0.1, 0.7, 0.3, 0.2]), PRESENT) == 1.0
    assert forecast_auc(torch.tensor([0.1, 0.9, 0.2, 0.7, 0.3]), PRESENT) == 0.0


def test_partial_ranking_and_ties_count_pairs() -> None:
    # wearers 0.5 and 0.2 against others 0.4, 0.1, 0.2: pairs won 3 + 1, tied 1 (half), of 6
    auc = forecast_auc(torch.tensor([0.5, 0.4, 0.2, 0.1, 0.2]), PRESENT)
    assert math.isclose(auc, 4.5 / 6)
    assert forecast_auc(torch.zeros(5), PRESENT) == 0.5


def test_no_forecast_without_both_outcomes_or_with_an_unmeasured_step() -> None:
    assert math.isnan(forecast_auc(torch.rand(5), torch.ones(5, dtype=torch.bool)))
    assert math.isnan(forecast_auc(torch.tensor([float("inf"), 0.1, 0.7, 0.3, 0.2]), PRESENT))


def test_an_image_switches_at_its_first_passing_step_inside_the_window_else_at_its_end() -> None:
    signal = torch.tensor([[0.9, 0.0], [0.1, 0.0], [0.8, 0.0], [0.9, 0.9]])  # [steps, images]
    assert switch_steps(signal, 0.5, True, 1, 3, 0).tolist() == [2, 3]
    assert switch_steps(signal, 0.5, True, 1, 4, 1).tolist() == [1, 4]  # lag 1: step k reads step k - 1


def _group(by_delay: list[float], n: int, signal: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """n identical cases: their score at each fixed delay [D+1, n] and a signal per step [steps, n]."""
    return torch.tensor(by_delay)[:, None].expand(-1, n), torch.tensor(signal)[:, None].expand(-1, n)


def test_the_default_window_serves_the_worst_group_not_the_pooled_mean() -> None:
    # many cases of A want delay 0, a few of B want delay 2; delay 1 is second best for both. The pooled mean
    # would take delay 0 (0.92 against 0.85); the worst group does best at 1 (0.8 against 0.6 at 0, 0.7 at 2).
    flat = [0.0, 0.0, 0.0]
    a, b = _group([1.0, 0.9, 0.7, 0.5], 8, flat), _group([0.6, 0.8, 1.0, 0.5], 2, flat)
    # the uninformative signal never passes 2.0, so window [0, 1) switches every image at its end, step 1
    assert worst_group_window([a, b], [-1.0, 2.0], [0, 1, 2], [1, 2, 3], max_extra=1.0) == (2.0, 0, 1)
    with pytest.raises(ValueError, match="no window"):
        worst_group_window([a, b], [-1.0, 2.0], [0, 1, 2], [1, 2, 3], max_extra=0.5)  # every window costs 1


def test_a_signal_that_tells_the_groups_apart_lets_each_switch_at_its_own_best_step() -> None:
    a = _group([1.0, 0.5, 0.5, 0.5], 2, [0.9, 0.9, 0.9])  # aligned at once: wants delay 0
    b = _group([0.5, 0.5, 1.0, 0.5], 2, [0.1, 0.1, 0.9])  # aligned from step 2: wants delay 2
    # A passes at step 0 (one measurement), B never in [0, 2) and switches at its end, 2 (two measurements),
    # so each group gets its best step; the limit holds for each group, not for the average (1.5)
    assert worst_group_window([a, b], [0.5, 2.0], [0, 1, 2], [1, 2, 3], max_extra=2.0) == (0.5, 0, 2)
    # with one extra evaluation allowed no window serves both: the first of the ties (0.5 each) is taken
    assert worst_group_window([a, b], [0.5, 2.0], [0, 1, 2], [1, 2, 3], max_extra=1.5) == (2.0, 0, 1)
    assert worst_group_window([a, b], [0.5, 2.0], [0, 1, 2], [1, 2, 3], max_extra=1.0) == (2.0, 0, 1)


def test_the_products_auto_defaults_are_the_ones_the_committed_study_chose_and_scored() -> None:
    """`bench/bench_auto.py` chooses the defaults on the bundled model's cases and scores the product's own; a
    change of either side without rerunning the study fails here."""
    report = json.loads((ROOT / "bench" / "results" / "bench_auto.json").read_text())
    d = DelaySettings()
    chosen, scored = report["defaults"], report["shipped"]
    assert (d.sensitivity, d.auto_min, d.auto_max) == (chosen["sensitivity"], chosen["earliest"], chosen["latest"])
    assert (d.sensitivity, d.auto_min, d.auto_max) == (scored["sensitivity"], scored["earliest"], scored["latest"])
    assert scored["pooled"]["extra_unet_work_pct"] <= report["max_extra_pct"]
