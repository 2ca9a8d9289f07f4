"""The built-ins benchmark (bench/bench_builtins.py): what the WebUI's prompt editing and "Ignore negative prompt during
early sampling" do to each denoiser evaluation in the stand-in, against this extension's delay, and the consistency
of the committed results (bench/results/bench_builtins.json)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_builtins as bb  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bench_builtins.json"
PROMPTS = ["red circle on blue background", "red triangle on blue background"]


class Toy:
    """The stand-in running the toy model with the extension, its UNet wrapped by the benchmark's counters."""

    def __init__(self) -> None:
        import harness

        from toy.model import ToyLDM

        self.harness = harness
        self.model = ToyLDM.load()
        self.meter = bb.bd.UNetMeter(self.model)
        self.counter = bb.RowCounter(self.model)

    def start(self) -> Toy:
        """(Re)start the stand-in on the toy model (other tests' fixtures start it on their own models)."""
        self.harness.start(str(ROOT), self.model)
        return self

    def image(self, method: bb.Method, sampler: str, steps: int) -> torch.Tensor:
        args = argparse.Namespace(steps=steps, cfg=7.0)
        with torch.inference_mode():
            return bb.run_method(self.harness, method, "glasses", PROMPTS, 3, args, sampler)

    def traces(self, methods: list[bb.Method], sampler: str, steps: int) -> dict[str, dict]:
        args = argparse.Namespace(steps=steps, cfg=7.0, first_seed=3)
        with torch.inference_mode():
            return bb.count_evaluations(
                self.harness, self.model, self.meter, self.counter, methods, args, sampler, "glasses", PROMPTS[0]
            )


@pytest.fixture(scope="module")
def toy_model() -> Toy:
    return Toy()


@pytest.fixture
def toy(toy_model: Toy) -> Iterator[Toy]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only waits (and on busy cores costs 5-10x)
    try:
        yield toy_model.start()
    finally:
        torch.set_num_threads(threads)


def method(key: str, fractions: list[float], steps: int) -> bb.Method:
    return {m.key: m for m in bb.make_methods(fractions, steps)}[key]


def test_prompt_editing_by_steps_with_euler_is_exactly_the_extensions_next_delay(toy: Toy) -> None:
    steps = 6
    edited = toy.image(method("[:NEG:2]", [0.3], steps), "Euler", steps)
    assert torch.equal(edited, toy.image(method("ext 3", [0.3], steps), "Euler", steps))
    assert not torch.equal(edited, toy.image(method("ext 2", [0.3], steps), "Euler", steps))
    trace = toy.traces([method("[:NEG:2]", [0.3], steps), method("ext 2", [0.3], steps)], "Euler", steps)
    assert trace["[:NEG:2]"]["uncond_per_evaluation"] == "eeennn"  # evaluations 0..N: step <= end_at_step
    assert trace["ext 2"]["uncond_per_evaluation"] == "eennnn"


def test_with_heun_prompt_editing_counts_evaluations_and_switches_inside_a_step(toy: Toy) -> None:
    steps = 6  # Heun: 11 evaluations; schedules are built over 2 x 6 = 12
    methods = [method(k, [0.5], steps) for k in ("[:NEG:3]", "[:NEG:0.5]", "ext 3")]  # N = 3
    trace = {k: v["uncond_per_evaluation"] for k, v in toy.traces(methods, "Heun", steps).items()}
    assert trace["[:NEG:3]"] == "ee|ee|nn|nn|nn|n"  # [:NEG:3] = evaluations 0..3: after 2 of 6 steps
    assert trace["[:NEG:0.5]"] == "ee|ee|ee|en|nn|n"  # int(0.5 x 12) = 6: evaluations 0..6
    assert trace["ext 3"] == "ee|ee|ee|nn|nn|n"
    edited = toy.image(method("[:NEG:0.5]", [0.5], steps), "Heun", steps)
    for delay in (3, 4):  # the two delays it lies between
        ext = bb.Method(f"ext {delay}", "extension", None, "NEG", (True, delay))
        assert not torch.equal(edited, toy.image(ext, "Heun", steps)), delay


def test_skip_early_cond_evaluations_run_the_cond_alone(toy: Toy) -> None:
    steps = 6
    euler = toy.traces([method("skip 0.5", [0.5], steps)], "Euler", steps)["skip 0.5"]
    assert euler["uncond_per_evaluation"] == "----nn"  # step / 6 <= 0.5: evaluations 0..3, inclusive
    assert euler["unet_rows_per_image"] == 2 * steps - 4 and euler["unet_calls_per_generation"] == steps
    heun = toy.traces([method("skip 0.25", [0.25], steps)], "Heun", steps)["skip 0.25"]
    assert heun["uncond_per_evaluation"] == "--|--|nn|nn|nn|n"  # step / 12 <= 0.25: evaluations 0..3
    assert heun["unet_rows_per_image"] == 2 * (2 * steps - 1) - 4


def test_on_sdxl_prompt_editing_gives_the_encoded_empty_prompt_not_the_zeros_of_an_empty_negative(sdxl: Any) -> None:
    harness, _, rec = sdxl

    def first_uncond(negative: str, ext: list) -> torch.Tensor:
        rec.clear()
        harness.txt2img(
            prompt="a cat", negative_prompt=negative, steps=4, alwayson_scripts={bb.bd.TITLE: {"args": ext}}
        )
        return rec.evaluations[0].uncond["crossattn"]

    assert not torch.count_nonzero(first_uncond("dog", [True, 3]))
    assert torch.count_nonzero(first_uncond("[:dog:2]", [False, 0]))


def _expected_rows(kind: str, fraction: float | None, sampler: str, steps: int) -> int:
    """UNet rows per image: two per denoiser evaluation, one for those that skip_early_cond leaves without uncond
    (step / total <= fraction, total = the sampler's expected evaluations: 2 x steps for Heun)."""
    evaluations, total = (2 * steps - 1, 2 * steps) if sampler == "Heun" else (steps, steps)
    skipped = sum(e / total <= fraction for e in range(evaluations)) if kind == "skip_early_cond" else 0
    return 2 * evaluations - skipped


def test_the_committed_results_are_internally_consistent() -> None:
    doc = json.loads(RESULTS.read_text())
    c = doc["config"]
    steps, accs = c["steps"], c["negatives"]
    assert doc["evaluation_counts_agree"]
    methods = {m["key"]: m for m in doc["methods"]}
    for sampler, res in doc["results"].items():
        for key, m in methods.items():
            pooled = res["pooled"][key]
            per = [res["accessories"][a][key] for a in accs]
            # equal case counts per accessory: pooled = mean of the accessories
            assert pooled["score"] == pytest.approx(sum(r["score"] for r in per) / len(per), abs=2e-5)
            assert pooled["ssim"] == pytest.approx(sum(r["ssim"] for r in per) / len(per), abs=2e-5)
            assert pooled["removed"] == sum(r["removed"] for r in per)
            for r in [pooled, *per]:
                if r["present_without_negative"]:
                    assert r["removal"] == pytest.approx(r["removed"] / r["present_without_negative"], abs=1e-5)
                assert r["score"] <= r["ssim"] + 1e-9 and 0.0 <= r["removal"] <= 1.0
            ev = doc["evaluations"][sampler][key]
            assert ev["unet_rows_per_image"] == _expected_rows(m["kind"], m["fraction"], sampler, steps), key
            assert res["unet_rows_per_image_main_run"][key] == [ev["unet_rows_per_image"]]
        assert res["pooled"]["no negative"]["removal"] == 0.0 and res["pooled"]["no negative"]["ssim"] == 1.0
        for f, n in zip(c["fractions"], c["delays"], strict=True):
            trace = doc["evaluations"][sampler]
            assert trace[f"[:NEG:{n}]"]["uncond_per_evaluation"].count("e") == n + 1
            per_step = 2 if sampler == "Heun" else 1
            assert trace[f"ext {n}"]["uncond_per_evaluation"].count("e") == per_step * n
            pairs = res["equalities"][repr(f)]
            assert all(v["of"] == len(accs) * c["cases"] for v in pairs.values())
            same = pairs["[:NEG:N] = ext N+1"]
            assert (same["identical"] == same["of"]) == (sampler == "Euler"), (sampler, f)
            if sampler == "Euler":
                assert res["pooled"][f"[:NEG:{n}]"] == res["pooled"][f"ext {n + 1}"]
            assert pairs["skip f = ext N"]["identical"] == 0 and pairs["[:NEG:N] = ext N"]["identical"] == 0
    rows = {(r["sampler"], r["method"]): r for r in doc["headline"]}
    assert len(rows) == len(doc["results"]) * len(methods)
    for (sampler, key), r in rows.items():
        assert r["score"] == doc["results"][sampler]["pooled"][key]["score"]
        assert r["evaluations_per_image"] == doc["evaluations"][sampler][key]["unet_rows_per_image"]
