"""Auto mode: per-image critical-step detection (structure stabilisation of the positive x0 prediction)."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from conftest import ROOT, TITLE, crossattn, encode_empty
from test_denoiser_swap import is_empty

from lib_negative_delay.detector import StabilityDetector, relative_change, threshold_for


def test_relative_change():
    a = torch.ones(2, 3, 4, 4)
    b = a.clone()
    b[1] *= 2
    assert torch.allclose(relative_change(a, b), torch.tensor([0.0, 0.5]))


def test_threshold_grows_with_sensitivity():
    values = [threshold_for(s) for s in (0.0, 0.25, 0.5, 1.0)]
    assert values == sorted(values) and values[0] < values[-1]
    assert threshold_for(-3) == values[0] and threshold_for(7) == values[-1]


def test_detector_switches_per_image_within_bounds():
    # image 0 settles at step 3 (change 0.5 → 0.05), image 1 never settles, image 2 settles at once
    changes = {0: [1, 1, 0.05, 0.01, 0.01], 1: [1, 1, 1, 1, 1], 2: [1, 0.01, 0.01, 0.01, 0.01]}
    det = StabilityDetector(batch=3, threshold=0.1, min_step=2, max_step=4)
    x0 = torch.ones(3, 1)
    for step in range(6):
        if step:
            x0 = x0 * torch.tensor([[1 + changes[i][step - 1]] for i in range(3)])
        det.observe(step, x0.clone())
    # relative change is |x_k - x_{k-1}| / |x_k| = c / (1 + c)
    assert det.finish(6) == [3, 4, 2]
    assert det.uses_negative(3) == [True, False, True]


def test_detector_ignores_missing_predictions_until_max():
    det = StabilityDetector(batch=2, threshold=0.5, min_step=1, max_step=3)
    for step in range(5):
        det.observe(step, None)
    assert det.finish(5) == [3, 3]


def auto_args(sensitivity=0.5, low=1, high=8, fallback=3):
    return {"alwayson_scripts": {TITLE: {"args": [True, fallback, True, sensitivity, low, high]}}}


@pytest.fixture(scope="module")
def toy():
    from lib_negative_delay.toy.model import ToyLDM

    return ToyLDM.load()


def start_toy(toy):
    import harness
    from conftest import Recorder
    from modules import script_callbacks

    harness.start(str(ROOT), toy)
    rec = Recorder()
    script_callbacks.on_cfg_denoiser(rec)
    return harness, rec


def test_auto_equals_fixed_delay_per_image(toy):
    h, rec = start_toy(toy)
    kw = dict(
        prompt="red circle on blue background",
        negative_prompt="hat",
        steps=8,
        batch_size=3,
        seed=11,
        width=32,
        height=32,
        sampler_name="Euler",
    )
    res = h.txt2img(**kw, **auto_args(sensitivity=0.6, low=1, high=6))
    info = res.infotexts[0]
    assert "Negative delay: auto" in info
    steps = [int(x) for x in re.search(r"Negative delay steps: ([\d ]+)", info).group(1).split()]
    assert len(steps) == 3 and all(1 <= s <= 6 for s in steps)
    # every evaluation: rows before their image's switch step hold the empty prompt, the others the negative
    empty = encode_empty(toy, 32, 32)
    for e in rec.evaluations:
        for row, switch in enumerate(steps):
            assert is_empty(crossattn(e.uncond)[row : row + 1], empty) == (e.index < switch)
    # and the images are exactly those of the fixed delays
    for delay in sorted(set(steps)):
        fixed = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, delay]}})
        for i, s in enumerate(steps):
            if s == delay:
                assert torch.equal(fixed.images[i], res.images[i])


def test_sensitivity_moves_the_switch_earlier(toy):
    h, _ = start_toy(toy)
    kw = dict(
        prompt="green square on black background",
        negative_prompt="hat",
        steps=12,
        batch_size=4,
        seed=3,
        width=32,
        height=32,
    )

    def steps(sensitivity):
        info = h.txt2img(**kw, **auto_args(sensitivity=sensitivity, low=1, high=10)).infotexts[0]
        return [int(x) for x in re.search(r"Negative delay steps: ([\d ]+)", info).group(1).split()]

    low, high = steps(0.0), steps(1.0)
    assert all(b <= a for a, b in zip(low, high, strict=True)) and sum(high) < sum(low)


def test_auto_sdxl_dict_and_hires(sdxl):
    h, model, rec = sdxl
    kw = dict(
        prompt="a cat",
        negative_prompt="glasses",
        steps=6,
        batch_size=2,
        enable_hr=True,
        hr_scale=2,
        denoising_strength=0.5,
        hr_second_pass_steps=6,
    )
    res = h.txt2img(**kw, **auto_args(low=2, high=3))
    steps = [int(x) for x in re.search(r"Negative delay steps: ([\d ]+)", res.infotexts[0]).group(1).split()]
    assert all(2 <= s <= 3 for s in steps)
    first = [e for e in rec.evaluations if e.uncond["crossattn"].shape[0] == 2][:6]
    empty = encode_empty(model, 64, 64)
    for e in first:
        for row, switch in enumerate(steps):
            one = {k: v[row : row + 1] for k, v in e.uncond.items()}
            assert is_empty(one, empty) == (e.index < switch)


def test_auto_failure_falls_back_to_fixed_delay(sd1, ext_log, monkeypatch):
    h, model, rec = sd1
    from lib_negative_delay.detector import StabilityDetector

    def boom(self, step, x0):
        raise RuntimeError("detector broke")

    monkeypatch.setattr(StabilityDetector, "observe", boom)
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=5, batch_size=2, **auto_args(fallback=2))
    assert len(res.images) == 2
    empty = encode_empty(model, 64, 64)
    assert [is_empty(e.uncond, empty) for e in rec.evaluations] == [True, True, False, False, False]
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "fixed delay 2" in warnings[0]


def test_auto_paste_round_trip_and_api(sd1):
    h, model, rec = sd1
    out = h.api().text2imgapi(
        {
            "prompt": "a cat",
            "negative_prompt": "glasses",
            "steps": 6,
            "alwayson_scripts": {TITLE: {"args": [True, 4, True, 0.7, 2, 5]}},
        }
    )
    info = out["info"]
    assert "Negative delay: auto" in info and "Negative delay auto: sensitivity 0.7 steps 2-5 fallback 4" in info
    text = out["processed"].infotexts[0]
    assert h.pasted_script_args(text, TITLE) == [True, 4, True, 0.7, 2, 5]
    fixed = h.txt2img(prompt="a cat", negative_prompt="glasses", alwayson_scripts={TITLE: {"args": [True, 3]}})
    assert h.pasted_script_args(fixed.infotexts[0], TITLE)[:3] == [True, 3, False]


def test_xyz_sensitivity_axis_turns_auto_on(sd1):
    h, *_ = sd1
    run = h.run_xyz("[Negative Delay] Sensitivity", "0.2, 0.8", prompt="a cat", negative_prompt="glasses", steps=5)
    infos = [c.processed.infotexts[0] for c in run.cells]
    assert all("Negative delay: auto" in t for t in infos)
    assert "sensitivity 0.2 " in infos[0] and "sensitivity 0.8 " in infos[1]
    run = h.run_xyz(
        "[Negative Delay] Auto-detect",
        "True, False",
        prompt="a cat",
        negative_prompt="glasses",
        steps=5,
        alwayson_scripts={TITLE: {"args": [True, 2]}},
    )
    infos = {c.x: c.processed.infotexts[0] for c in run.cells}
    assert "Negative delay: auto" in infos["True"] and "Negative delay: 2" in infos["False"]
