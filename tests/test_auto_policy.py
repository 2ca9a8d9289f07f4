"""The offline detector study's pure helpers (`bench/auto_policy.py`)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from auto_policy import forecast_auc, switch_steps  # noqa: E402

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
