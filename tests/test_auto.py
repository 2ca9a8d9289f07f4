"""Auto mode: per-image critical-step detection (neutralisation alignment, switched within the step)."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from conftest import ROOT, TITLE, encode_empty
from test_denoiser_swap import is_empty

from lib_negative_delay.detector import AlignmentDetector, alignment, threshold_for


def test_alignment_is_the_cosine_of_the_differences():
    empty = torch.zeros(3, 2, 2, 2)
    pos = torch.ones(3, 2, 2, 2)
    neg = torch.stack([torch.ones(2, 2, 2) * 3, -torch.ones(2, 2, 2), torch.zeros(2, 2, 2)])
    assert torch.allclose(alignment(pos, empty, neg), torch.tensor([1.0, -1.0, 0.0]))
    # only the differences to the empty branch count: a common offset changes nothing
    shifted = alignment(pos + 5, empty + 5, neg + 5)
    assert torch.allclose(shifted, torch.tensor([1.0, -1.0, 0.0]))


def test_threshold_falls_with_sensitivity():
    values = [threshold_for(s) for s in (0.0, 0.25, 0.5, 1.0)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert threshold_for(-3) == values[0] and threshold_for(7) == values[-1]
    assert values[-1] < -1.0  # full sensitivity: every image switches at the earliest step


def test_detector_switches_per_image_within_bounds():
    det = AlignmentDetector(batch=3, threshold=0.2, min_step=1, max_step=4)
    assert det.probing(0) == []  # before the earliest step nothing is measured
    assert det.probing(1) == [0, 1, 2]
    assert det.decide(1, [0, 1, 2], torch.tensor([0.5, -0.1, 0.1])) == [0]
    assert det.uses_negative(1) == [True, False, False]
    assert det.probing(2) == [1, 2]
    assert det.decide(2, [1, 2], torch.tensor([0.0, 0.3])) == [2]
    assert det.probing(3) == [1]
    assert det.decide(3, [1], torch.tensor([0.1])) == []
    assert det.probing(4) == []  # the latest step: undecided images switch without a measurement
    assert det.uses_negative(3) == [True, False, True] and det.uses_negative(4) == [True, True, True]
    assert det.finish(10) == [1, 4, 2]
    assert det.finish(3) == [1, 3, 2]  # a latest step beyond the run: never


def auto_args(sensitivity=0.5, low=1, high=8, fallback=3):
    return {"alwayson_scripts": {TITLE: {"args": [True, fallback, True, sensitivity, low, high]}}}


@pytest.fixture(scope="module")
def toy():
    from toy.model import ToyLDM

    return ToyLDM.load()


def start_toy(toy):
    import harness
    from conftest import Recorder
    from modules import script_callbacks

    harness.start(str(ROOT), toy)
    rec = Recorder()
    script_callbacks.on_cfg_denoiser(rec)
    return harness, rec


def switch_steps(info: str) -> list[int]:
    return [int(x) for x in re.search(r"Negative delay steps: ([\d ]+)", info).group(1).split()]


def uncond_seen_is_empty(e, row: int, empty) -> bool:
    u = e.uncond
    one = {k: v[row : row + 1] for k, v in u.items()} if isinstance(u, dict) else u[row : row + 1]
    return is_empty(one, empty)


def check_rows(evaluations, steps: list[int], high: int, empty) -> None:
    """What the model call gets: an image switched by a measurement at step k still sends the empty prompt at k
    (its negative output replaces the uncond after the call); one switched at the latest step sends the negative."""
    for e in evaluations:
        for row, switch in enumerate(steps):
            last_empty = switch if switch < high else switch - 1
            assert uncond_seen_is_empty(e, row, empty) == (e.index <= last_empty), (e.index, row, steps)


def test_auto_equals_fixed_delay_per_image(toy):
    h, rec = start_toy(toy)
    kw = dict(
        prompt="red circle on blue background",
        negative_prompt="hat",
        steps=8,
        batch_size=4,
        seed=11,
        width=32,
        height=32,
        sampler_name="Euler",
    )
    toy.calls = 0
    res = h.txt2img(**kw, **auto_args(sensitivity=0.25, low=0, high=6))
    info = res.infotexts[0]
    assert "Negative delay: auto" in info
    steps = switch_steps(info)
    assert len(steps) == 4 and all(0 <= s <= 6 for s in steps)
    assert len(set(steps)) > 1  # images of one batch switch at different steps
    check_rows(rec.evaluations, steps, 6, encode_empty(toy, 32, 32))
    # and the images are those of the fixed delays (the switching step's uncond comes from its own, smaller call)
    for delay in sorted(set(steps)):
        fixed = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, delay]}})
        for i, s in enumerate(steps):
            if s == delay:
                assert torch.allclose(fixed.images[i], res.images[i], atol=2e-4)


def test_extra_evaluations_only_for_undecided_images(sd1, monkeypatch):
    h, model, rec = sd1
    from lib_negative_delay.webui import probe

    kw = dict(prompt="a cat", negative_prompt="glasses", steps=6, batch_size=3)
    model.reset_calls()
    h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, 2]}})
    fixed_rows = sum(c.batch_size for c in model.calls)
    # full sensitivity: every image switches at the earliest step, after one measurement
    model.reset_calls()
    res = h.txt2img(**kw, **auto_args(sensitivity=1.0, low=1, high=4))
    assert switch_steps(res.infotexts[0]) == [1, 1, 1]
    assert sum(c.batch_size for c in model.calls) == fixed_rows + 3
    # never aligned: all three are measured at steps 1, 2, 3 and switch at 4 without a measurement
    monkeypatch.setattr(probe, "alignment", lambda pos, empty, neg: torch.full((pos.shape[0],), -1.0))
    model.reset_calls()
    res = h.txt2img(**kw, **auto_args(sensitivity=0.0, low=1, high=4))
    assert switch_steps(res.infotexts[0]) == [4, 4, 4]
    assert sum(c.batch_size for c in model.calls) == fixed_rows + 3 * 3


def test_auto_with_and_prompt_and_padding(sd1):
    h, model, rec = sd1
    long_negative = " ".join(["blurry"] * 80)  # 2 chunks against a 1-chunk prompt: the WebUI pads
    res = h.txt2img(
        prompt="a cat AND a hat :0.5",
        negative_prompt=long_negative,
        steps=5,
        batch_size=2,
        **auto_args(sensitivity=1.0, low=1, high=3),
    )
    assert switch_steps(res.infotexts[0]) == [1, 1]
    model.reset_calls()
    rec.clear()
    fixed = h.txt2img(
        prompt="a cat AND a hat :0.5",
        negative_prompt=long_negative,
        steps=5,
        batch_size=2,
        alwayson_scripts={TITLE: {"args": [True, 1]}},
    )
    for a, b in zip(res.images, fixed.images, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_sensitivity_moves_the_switch_earlier(toy):
    h, _ = start_toy(toy)
    kw = dict(
        prompt="green square on gray background",
        negative_prompt="hat",
        steps=12,
        batch_size=4,
        seed=3,
        width=32,
        height=32,
    )

    def steps(sensitivity):
        return switch_steps(h.txt2img(**kw, **auto_args(sensitivity=sensitivity, low=0, high=10)).infotexts[0])

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
    res = h.txt2img(**kw, **auto_args(sensitivity=1.0, low=2, high=3))
    steps = switch_steps(res.infotexts[0])
    assert steps == [2, 2]
    first = [e for e in rec.evaluations if e.uncond["crossattn"].shape[0] == 2][:6]
    check_rows(first, steps, 3, encode_empty(model, 64, 64))
    fixed = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, 2]}})
    for a, b in zip(res.images, fixed.images, strict=True):
        assert torch.allclose(a, b, atol=1e-5)  # the hires pass too: it reuses each image's noise level


@pytest.mark.parametrize(
    "where, fallback, empties",
    [
        ("probing", 2, [True, True, False, False, False]),  # the detector, in on_cfg_denoiser
        ("alignment", 3, [True, True, True, False, False]),  # the measurement, in on_cfg_denoised
    ],
)
def test_auto_failure_falls_back_to_fixed_delay_once(sd1, ext_log, monkeypatch, where, fallback, empties):
    h, model, rec = sd1
    from lib_negative_delay.webui import probe

    def boom(*args):
        raise RuntimeError(f"{where} broke")

    monkeypatch.setattr(*((AlignmentDetector, "probing") if where == "probing" else (probe, "alignment")), boom)
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=5, batch_size=2, **auto_args(fallback=fallback))
    assert len(res.images) == 2
    empty = encode_empty(model, 64, 64)
    assert [is_empty(e.uncond, empty) for e in rec.evaluations] == empties
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and f"{where} broke" in warnings[0] and f"fixed delay {fallback}" in warnings[0]


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
    assert h.pasted_script_args(text, TITLE) == [True, 4, True, 0.7, 2, 5, "steps", False]
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


def test_steps_without_uncond_are_not_measured(sd1):
    """Skip early CFG leaves no uncond to compare with: the measurement waits for the first step that has one."""
    h, model, rec = sd1
    from modules import shared

    shared.opts.skip_early_cond = 0.5  # steps 0-3 of 6 run without the uncond
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=6, **auto_args(sensitivity=1.0, low=0, high=5))
    assert switch_steps(res.infotexts[0]) == [4]
    shared.opts.skip_early_cond = 0.0
    shared.opts.batch_cond_uncond = False  # the model is called per half-batch: same rows, same decision
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=6, **auto_args(sensitivity=1.0, low=0, high=5))
    assert switch_steps(res.infotexts[0]) == [0]
