"""The delay benchmark's auto study (``bench_delay --auto-grid``) and the flow model's committed results
(``bench/results/flow/``): the lookup an auto switch is scored by, and the verdict the docs state."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_delay  # noqa: E402

FLOW = ROOT / "bench" / "results" / "flow" / "bench_delay.json"


def test_the_auto_grid_is_every_sensitivity_with_every_window():
    assert bench_delay.parse_auto_grid("0.1,0.5/2-5,4-7") == [(0.1, 2, 5), (0.1, 4, 7), (0.5, 2, 5), (0.5, 4, 7)]
    assert bench_delay.parse_auto_grid(" ") == []


def test_an_auto_switch_is_scored_as_the_fixed_delay_it_switched_at():
    # 3 delays x 4 cases: present (1 = accessory still there) and SSIM outside it
    present = torch.tensor([[0, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    ssim = torch.tensor([[0.5, 0.6, 0.7, 0.8], [0.9, 0.9, 0.9, 0.9], [1.0, 1.0, 1.0, 1.0]])
    got = bench_delay.auto_outcomes({"present": present, "ssim": ssim}, [0, 1, 0, 2])
    assert got.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0])
    got = bench_delay.auto_outcomes({"present": present, "ssim": ssim}, [1, 0, 1, 1])
    assert got.tolist() == pytest.approx([0.9, 0.6, 0.9, 0.9])


def test_the_study_picks_the_setting_whose_worst_accessory_does_best():
    present = torch.zeros(3, 2, dtype=torch.bool)
    ssim_a = torch.tensor([[0.5, 0.5], [1.0, 1.0], [0.8, 0.8]])  # accessory a: best fixed delay 1 (1.0)
    ssim_b = torch.tensor([[0.9, 0.9], [0.6, 0.6], [0.5, 0.5]])  # accessory b: best fixed delay 0 (0.9)
    outcomes = {"a": {"present": present, "ssim": ssim_a}, "b": {"present": present, "ssim": ssim_b}}
    per_neg = {
        "a": {"auto": {(0.1, 0, 2): [1, 1], (0.9, 0, 2): [2, 2]}},
        "b": {"auto": {(0.1, 0, 2): [2, 2], (0.9, 0, 2): [0, 1]}},
    }
    best = {"a": 1.0, "b": 0.9, "pooled": 0.8}
    study = bench_delay.auto_study(per_neg, outcomes, best)
    first, second = study["settings"]
    assert first["a"]["vs_best_fixed"] == pytest.approx(1.0) and first["b"]["vs_best_fixed"] == pytest.approx(0.5 / 0.9)
    assert second["worst_vs_best_fixed"] == pytest.approx(0.8)  # a: 0.8 / 1.0; b: 0.75 / 0.9
    assert study["best_by_worst_accessory"]["sensitivity"] == 0.9


def test_the_committed_flow_results_are_the_shipped_flow_weights_and_say_what_the_docs_say():
    from toy.model import FLOW_WEIGHTS_DIR, ToyLDM

    doc = json.loads(FLOW.read_text())
    assert doc["config"]["objective"] == "flow" and doc["config"]["cases"] == 64
    assert doc["config"]["model"] == ToyLDM.load(FLOW_WEIGHTS_DIR).sd_model_hash  # made with the shipped weights
    assert all(all(v.values()) for sampler in doc["checks"].values() for v in sampler.values())
    best = {s: doc["pooled"][s]["best_delay"] for s in doc["pooled"]}
    ratio = {s: doc["pooled"][s]["best_score"] / doc["pooled"][s]["delays"][0]["score"] for s in doc["pooled"]}
    assert best == {"Euler": 5, "Heun": 4}
    assert [round(r, 2) for r in ratio.values()] == [1.03, 1.03]
    readme = (ROOT / "README.md").read_text()
    assert "best\n  pooled delay 5 (Euler) and 4 (Heun), 1.03×" in readme
    defaults = [
        r for r in doc["auto"]["Euler"]["settings"] if (r["sensitivity"], r["earliest"], r["latest"]) == (0.3, 4, 7)
    ]
    assert round(defaults[0]["pooled_vs_best_fixed"], 2) == 0.98
    benchmark = (ROOT / "docs" / "benchmark.md").read_text()
    assert "steps 4–7) reach 0.982× (Euler) and 0.985× (Heun)" in benchmark
