"""The step-count study (bench/bench_steps.py): carry computation, percent resolution, and its committed results."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_steps  # noqa: E402

from lib_negative_delay.settings import Delay  # noqa: E402
from toy import metrics  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def test_carries_on_a_hand_made_score_table() -> None:
    # at S = 10; the reference (20 steps) chose delay 5, i.e. 25 %: as steps 5, as a share ceil(2.5) = 3
    scores = {0: 0.80, 1: 0.82, 2: 0.90, 3: 0.88, 4: 0.85, 5: 0.72, 6: 0.60}
    got = bench_steps.carries(scores, steps=10, chosen=5, reference_steps=20)
    assert (got["best_delay"], got["best_share"], got["best_score"]) == (2, 20.0, 0.90)
    assert got["step_carry"]["delay"] == 5 and got["step_carry"]["share"] == 50.0
    assert got["step_carry"]["ratio"] == pytest.approx(0.80)  # 0.72 / 0.90
    assert got["percent_carry"]["delay"] == 3 and got["percent_carry"]["share"] == 30.0
    assert got["percent_carry"]["ratio"] == pytest.approx(0.88 / 0.90)
    # at S = 50 the same choice: steps 5 (10 %), share 25 % -> 12.5 -> 13
    scores50 = {d: 0.5 + 0.01 * d for d in range(31)}  # best at the top: 30
    got50 = bench_steps.carries(scores50, steps=50, chosen=5, reference_steps=20)
    assert got50["best_delay"] == 30
    assert got50["step_carry"]["ratio"] == pytest.approx(0.55 / 0.80)
    assert got50["percent_carry"]["delay"] == 13
    assert got50["percent_carry"]["ratio"] == pytest.approx(0.63 / 0.80)


def test_the_best_is_the_earliest_on_a_tie_as_in_bench_delay() -> None:
    assert bench_steps.best_of({3: 0.9, 1: 0.9, 2: 0.5}) == 1
    assert bench_steps.best_of({0: 0.2, 7: 0.3}) == 7


def test_percent_carry_rounds_up_like_the_extension() -> None:
    # 3 of 20 steps is 15 %: 1.5 / 4.5 / 7.5 steps at 10 / 30 / 50 round up (round() would give 2 / 4 / 8)
    assert [bench_steps.percent_carry(3, 20, s) for s in (10, 30, 50)] == [2, 5, 8]
    # a whole number of steps stays that step: 30 % of 50 = 15
    assert bench_steps.percent_carry(6, 20, 50) == 15
    assert bench_steps.percent_carry(0, 20, 50) == 0
    # the step carry never passes S (a delay >= S never applies the negative)
    assert bench_steps.step_carry(12, 10) == 10 and bench_steps.step_carry(5, 10) == 5


def test_percent_carry_is_delay_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake(self: Delay, total: int) -> int:
        seen.append((self.value, self.percent, total))
        return 7

    monkeypatch.setattr(Delay, "steps", fake)
    assert bench_steps.percent_carry(5, 20, 30) == 7
    assert seen == [(25.0, True, 30)]


def test_the_delays_run_cover_the_grid_and_every_carry() -> None:
    assert bench_steps.grid(10, 60) == list(range(7))
    assert bench_steps.grid(50, 60) == list(range(31))
    assert bench_steps.grid(3, 60) == [0, 1, 2]  # ceil(1.8)
    assert bench_steps.grid(4, 100) == [0, 1, 2, 3, 4]
    # chosen 9 at 20: as steps 9, as 45 % ceil(4.5) = 5; chosen 15: steps capped at 10, 75 % -> 8
    assert bench_steps.needed_delays(10, 60, [9, 15], 20) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert bench_steps.needed_delays(50, 60, [5], 20) == list(range(31))


def test_summarise_relabels_bench_delays_rows_with_the_delays_run() -> None:
    # 4 cases; three evaluated delays 0, 3 and 7; the accessory present without the negative in cases 0 and 1
    present_ref = torch.tensor([True, True, False, False])
    present = torch.tensor([[False, False, False, False], [False, True, False, False], [True, True, False, True]])
    ssim = torch.tensor([[0.5, 0.6, 0.7, 0.8], [0.9, 0.9, 0.9, 0.9], [1.0, 1.0, 1.0, 1.0]])
    outcomes = {"present_ref": present_ref, "present": present, "psnr": ssim * 40, "ssim": ssim}
    got = bench_steps.summarise(outcomes, ["a", "a", "b", "b"], [0, 3, 7])
    assert [r["delay"] for r in got["delays"]] == [0, 3, 7]
    scores = bench_steps.scores_of(got)
    assert scores[0] == pytest.approx(0.65) and scores[3] == pytest.approx(2.7 / 4) and scores[7] == pytest.approx(0.25)
    assert scores[3] == pytest.approx(float(metrics.case_score(present[1], ssim[1]).mean()))
    assert got["delays"][1]["removal"] == pytest.approx(0.5)
    assert "per_prompt" not in got["delays"][0]


def _committed() -> tuple[dict, dict]:
    path = RESULTS / "bench_steps.json"
    if not path.exists():
        pytest.skip("bench/results/bench_steps.json not generated yet")
    return json.loads(path.read_text()), json.loads((RESULTS / "bench_delay.json").read_text())


def test_the_committed_study_is_consistent() -> None:
    doc, _ = _committed()
    c = doc["config"]
    ref_s = c["reference_steps"]
    assert all(
        v
        for per_s in doc["checks"].values()
        for per_neg in per_s.values()
        for x in per_neg.values()
        for v in x.values()
    )
    for sampler, res in doc["samplers"].items():
        assert sorted(int(s) for s in res["steps"]) == sorted(c["steps_list"]), sampler
        chosen = {"pooled": res["reference_delay"], **res["reference_delay_per_accessory"]}
        assert res["reference_share"] == pytest.approx(100 * res["reference_delay"] / ref_s)
        for s_text, at in res["steps"].items():
            s = int(s_text)
            assert set(bench_steps.grid(s, c["max_share_percent"])) <= set(at["delays_evaluated"])
            for key in ["pooled", *c["negatives"]]:
                e = at[key]
                scores = {int(d): v["score"] for d, v in e["scores"].items()}
                assert sorted(scores) == at["delays_evaluated"]
                where = f"{sampler} S={s} {key}"
                assert e["best_delay"] == bench_steps.best_of(scores), where
                assert e["best_score"] == max(scores.values()), where
                assert e["best_at_range_edge"] == (e["best_delay"] < s and e["best_delay"] + 1 not in scores), where
                if s == ref_s:
                    assert e["best_delay"] == chosen[key], where
                step_d = bench_steps.step_carry(chosen[key], s)
                pct_d = Delay(100 * chosen[key] / ref_s, percent=True).steps(s)
                assert (e["step_carry"]["delay"], e["percent_carry"]["delay"]) == (step_d, pct_d), where
                for carry in ("step_carry", "percent_carry"):
                    k = e[carry]
                    assert k["score"] == scores[k["delay"]], where
                    assert k["ratio"] <= 1.0, where
                    assert k["ratio"] == pytest.approx(k["score"] / e["best_score"], abs=2e-5), where
            assert at["pooled"]["cases"] == c["cases_pooled"] == c["cases"] * len(c["negatives"])


def test_the_reference_step_count_agrees_with_the_delay_benchmark() -> None:
    doc, bench = _committed()
    c, bc = doc["config"], bench["config"]
    assert c["model"] == bc["model"], "bench_steps.json and bench_delay.json come from different weights"
    same_cases = all(c[k] == bc[k] for k in ("seeds", "first_seed", "prompts", "pairing", "negatives", "cfg_scale"))
    comparison = doc["comparison_with_bench_delay"]
    assert comparison["comparable"] == (same_cases and c["reference_steps"] == bc["steps"])
    if not comparison["comparable"]:  # fewer cases than bench_delay.json: the check was made on a smaller set
        small = doc["small_comparison_with_bench_delay"]
        assert small["comparable"] and small["model"] == c["model"]
        for sampler in doc["samplers"]:
            assert small[sampler]["equal_to_rounding"] and small[sampler]["max_abs_diff"] <= 1e-5
            assert small[sampler]["delays_compared"] == list(
                range(bench_steps.grid(c["reference_steps"], c["max_share_percent"])[-1] + 1)
            )
        return
    for sampler, res in doc["samplers"].items():
        ours = res["steps"][str(c["reference_steps"])]["pooled"]["scores"]
        theirs = bench["pooled"][sampler]["delays"]
        for d, v in ours.items():
            assert math.isclose(v["score"], theirs[int(d)]["score"], abs_tol=1.5e-5), (sampler, d)
        assert (
            res["reference_delay"] == bench["pooled"][sampler]["best_delay"]
            or res["steps"][str(c["reference_steps"])]["pooled"]["best_at_range_edge"]
        )
