"""The delay marks a noise level, and the empty prompt follows the text encoder (issue: exact in every corner).

Each test here failed on the extension before the noise-level rule and the per-pass encoding:
- timestep samplers in img2img switched one step late (their pass starts at full-schedule step steps - t_enc);
- the hires pass read the delay against *Hires steps* instead of the first pass's schedule;
- a Clip skip change or a LoRA on the same checkpoint left the early steps with a stale empty prompt;
- a refiner loaded into the same model object kept the base checkpoint's empty prompt.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from conftest import TITLE, encode_empty, same
from test_denoiser_swap import is_empty
from test_passes import split_passes

from webui_tier.scenarios import SCHEDULE_TYPES as EVERY_OTHER_SCHEDULE_TYPE


def run(h, rec, tab, delay, **fields):
    rec.clear()
    args = {"alwayson_scripts": {TITLE: {"args": [True, delay]}}} if delay is not None else {}
    fields.setdefault("prompt", "a cat")
    fields.setdefault("negative_prompt", "glasses")
    res = h.txt2img(**fields, **args) if tab == "txt2img" else h.img2img(**fields, **args)
    return res, split_passes(rec.evaluations)


def check_levels(off, on, threshold, empty):
    """Evaluations above ``threshold`` have the empty prompt; the others are untouched."""
    assert len(off) == len(on)
    for a, b in zip(off, on, strict=True):
        if b.sigma > threshold * (1 + 1e-5):
            assert is_empty(b.uncond, empty), (b.index, b.sigma, threshold)
        else:
            assert same(a.uncond, b.uncond), (b.index, b.sigma, threshold)


def test_ddim_img2img_switches_at_the_delays_timestep(sd1):
    """DDIM evaluates txt2img timesteps 901, 801, 701, 601, …; img2img at 0.8 of 10 starts at 701 (full-schedule
    step 2 = steps - t_enc). Delay 3 marks timestep 601: only 701 keeps the empty prompt."""
    h, model, rec = sd1
    _, (txt,) = run(h, rec, "txt2img", None, steps=10, sampler_name="DDIM")
    assert [round(e.sigma) for e in txt[:4]] == [901, 801, 701, 601]
    fields = dict(init_images=[torch.rand(3, 64, 64)], steps=10, sampler_name="DDIM", denoising_strength=0.8)
    _, (off,) = run(h, rec, "img2img", None, **fields)
    _, (on,) = run(h, rec, "img2img", 3, **fields)
    assert round(on[0].sigma) == 701
    check_levels(off, on, txt[3].sigma, encode_empty(model, 64, 64))
    assert sum(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on) == 1


def test_hires_pass_reads_the_delay_on_the_first_pass_schedule(sd1):
    """Sampling steps 8, delay 3, Hires steps 4 at denoising 0.6: the first pass switches at its step 3; the hires
    pass keeps the empty prompt only while its level is above that step's level (not "3 of 4")."""
    h, model, rec = sd1
    fields = dict(steps=8, enable_hr=True, hr_scale=2, hr_second_pass_steps=4, denoising_strength=0.6)
    _, (off1, off2) = run(h, rec, "txt2img", None, **fields)
    _, (on1, on2) = run(h, rec, "txt2img", 3, **fields)
    empty1, empty2 = encode_empty(model, 64, 64), encode_empty(model, 128, 128)
    assert [is_empty(e.uncond, empty1) for e in on1] == [True] * 3 + [False] * 5
    check_levels(off2, on2, on1[3].sigma, empty2)
    assert sum(is_empty(e.uncond, empty2) for e in on2) == 1  # 4 steps cut from 6: only the first is above


def test_delay_beyond_hires_steps_still_applies_in_the_hires_pass(sd1):
    """Delay 5 with Hires steps 4 used to mean "never" in the hires pass; it is a noise level the pass reaches."""
    h, model, rec = sd1
    fields = dict(steps=8, enable_hr=True, hr_scale=2, hr_second_pass_steps=4, denoising_strength=0.6)
    _, (off1, off2) = run(h, rec, "txt2img", None, **fields)
    _, (on1, on2) = run(h, rec, "txt2img", 5, **fields)
    assert sum(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on1) == 5
    check_levels(off2, on2, on1[5].sigma, encode_empty(model, 128, 128))
    assert 0 < sum(is_empty(e.uncond, encode_empty(model, 128, 128)) for e in on2) < 4


def test_clip_skip_change_on_the_same_checkpoint(sd1):
    h, model, rec = sd1
    from modules import shared

    run(h, rec, "txt2img", 2)  # Clip skip 1 first: the image must not depend on it
    shared.opts.CLIP_stop_at_last_layers = 2
    try:
        _, (on,) = run(h, rec, "txt2img", 2)
        expected = encode_empty(model, 64, 64)
    finally:
        shared.opts.CLIP_stop_at_last_layers = 1
    stale = encode_empty(model, 64, 64)
    assert not torch.allclose(expected, stale)
    assert [is_empty(e.uncond, expected) for e in on] == [True, True, False, False, False]


def test_lora_on_the_text_encoder(sd1):
    h, model, rec = sd1
    run(h, rec, "txt2img", 2)  # without the LoRA first
    _, (on,) = run(h, rec, "txt2img", 2, prompt="a cat <lora:detail:0.8>")
    model.text_encoder.network_strength = 0.8  # what the LoRA does to the text encoder while active
    try:
        expected = encode_empty(model, 64, 64)
    finally:
        model.text_encoder.network_strength = 0.0
    assert not torch.allclose(expected, encode_empty(model, 64, 64))
    assert [is_empty(e.uncond, expected) for e in on] == [True, True, False, False, False]
    # and the next generation without the LoRA is back to the plain empty prompt
    _, (again,) = run(h, rec, "txt2img", 2)
    assert [is_empty(e.uncond, encode_empty(model, 64, 64)) for e in again] == [True, True, False, False, False]


def test_refiner_loaded_into_the_same_model_object(sd1):
    h, model, rec = sd1
    from fake_models import FakeSD1Model
    from modules import sd_models, shared

    refiner = FakeSD1Model(seed=7, name="fake-refiner")
    sd_models.register_checkpoint(refiner)
    base_empty, refiner_empty = encode_empty(model, 64, 64), encode_empty(refiner, 64, 64)
    refiner_args = {"Refiner": {"args": [True, "fake-refiner.safetensors", 0.3]}}
    rec.clear()
    res = h.txt2img(
        prompt="a cat",
        negative_prompt="glasses",
        steps=8,
        alwayson_scripts={TITLE: {"args": [True, 6]}, **refiner_args},
    )
    assert "Refiner: fake-refiner" in res.infotexts[0]
    assert shared.sd_model is model  # the same object now holds the refiner's weights
    kinds = [
        "base" if is_empty(e.uncond, base_empty) else "refiner" if is_empty(e.uncond, refiner_empty) else "neg"
        for e in rec.evaluations
    ]
    switch = kinds.index("refiner")
    assert 0 < switch < 6 and kinds == ["base"] * switch + ["refiner"] * (6 - switch) + ["neg"] * 2
    # the next generation starts from the selected (base) checkpoint again, with its own empty prompt
    _, (again,) = run(h, rec, "txt2img", 2)
    assert shared.sd_model.sd_model_hash == sd_models.selected[0].shorthash
    assert [is_empty(e.uncond, base_empty) for e in again] == [True, True, False, False, False]


def test_api_only_start_has_the_xyz_axes():
    """--nowebui: the API builds the UI (and the X/Y/Z script takes its axis list) before before_ui runs."""
    import harness
    from conftest import ROOT
    from fake_models import FakeSD1Model
    from modules import scripts

    harness.start_api_only(str(ROOT), FakeSD1Model())
    xyz = next(s for s in scripts.scripts_txt2img.scripts if s.title() == "X/Y/Z plot")
    labels = [x.label for x in xyz.current_axis_options]
    assert "[Negative Delay] Delay" in labels and "[Negative Delay] Auto-detect" in labels
    assert labels.count("[Negative Delay] Delay") == 1


# --- samplers without the usual step structure ----------------------------------------------------------------


def latched_expectation(sigmas, threshold):
    """Per evaluation: empty prompt until the first evaluation at or below ``threshold`` (then never again)."""
    out, reached = [], False
    for s in sigmas:
        reached = reached or s <= threshold * (1 + 1e-5)
        out.append(not reached)
    return out


def test_unipc_counts_its_steps_despite_the_late_counter(sd1, ext_log):
    """UniPC's step callback fires after the next evaluation (counter 0, 0, 0, 1, 2, …): no warning, exact."""
    h, model, rec = sd1
    _, (on,) = run(h, rec, "txt2img", 3, steps=8, sampler_name="UniPC")
    assert [e.sampling_step for e in on[:5]] == [0, 0, 0, 1, 2]
    assert [is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on] == [True] * 3 + [False] * 5
    assert not any("unexpected order" in m for m in ext_log.messages)


@pytest.mark.parametrize(
    "sampler,reference_scheduler",
    [("DPM fast", "Automatic"), ("DPM adaptive", "Automatic"), ("Restart", "Karras")],
)
@pytest.mark.parametrize("delay", [3, 8])
def test_samplers_without_steps_switch_at_the_noise_level(sd1, ext_log, sampler, reference_scheduler, delay):
    """The level of step N of a txt2img run with the same steps and schedule (read here off an Euler run); the
    first evaluation at or below it switches. DPM fast at delay 8 of 12 used to never apply the negative."""
    h, model, rec = sd1
    _, (euler,) = run(h, rec, "txt2img", None, steps=12, sampler_name="Euler", scheduler=reference_scheduler)
    threshold = euler[delay].sigma
    _, (off,) = run(h, rec, "txt2img", None, steps=12, sampler_name=sampler)
    _, (on,) = run(h, rec, "txt2img", delay, steps=12, sampler_name=sampler)
    expected = latched_expectation([e.sigma for e in on], threshold)
    empty = encode_empty(model, 64, 64)
    assert [is_empty(e.uncond, empty) for e in on] == expected
    assert any(expected) and not all(expected)
    for a, b, keep in zip(off, on, expected, strict=True):
        if not keep:
            assert same(a.uncond, b.uncond)
    assert any("no fixed step structure" in m for m in ext_log.messages)


def test_unipc_img2img_compares_levels_as_sigmas(sd1):
    """UniPC passes (fractional) timesteps; they are compared with the txt2img level as sigmas."""
    h, model, rec = sd1
    _, (txt,) = run(h, rec, "txt2img", None, steps=10, sampler_name="UniPC")
    ac = [float(a) for a in model.alphas_cumprod]

    def sigma(t):  # log sqrt(alpha_bar) interpolated between integer timesteps
        lo = min(int(t), len(ac) - 2)
        f = t - lo
        half = 0.5 * ((1 - f) * math.log(ac[lo]) + f * math.log(ac[lo + 1]))
        return math.sqrt(math.exp(-2 * half) - 1)

    threshold = sigma(txt[4].sigma)
    fields = dict(init_images=[torch.rand(3, 64, 64)], steps=10, sampler_name="UniPC", denoising_strength=0.8)
    _, (off,) = run(h, rec, "img2img", None, **fields)
    _, (on,) = run(h, rec, "img2img", 4, **fields)
    expected = [sigma(e.sigma) > threshold * (1 + 1e-5) for e in on]
    assert [is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on] == expected
    assert any(expected) and not all(expected)


SCHEDULE_TYPES = ["Automatic", *EVERY_OTHER_SCHEDULE_TYPE]  # the Schedule type dropdown of v1.10.1


@pytest.mark.parametrize("scheduler", SCHEDULE_TYPES)
def test_img2img_with_every_schedule_type(sd1, scheduler):
    """img2img at 0.7 with "do exactly the amount of steps" (12 steps cut from a 17-step schedule), delay 4: the
    empty prompt exactly while the level is above the level of txt2img step 4 under the same schedule type."""
    h, model, rec = sd1
    from modules import shared

    shared.opts.img2img_fix_steps = True
    _, (txt,) = run(h, rec, "txt2img", None, steps=12, sampler_name="Euler", scheduler=scheduler)
    fields = dict(init_images=[torch.rand(3, 64, 64)], steps=12, sampler_name="Euler", scheduler=scheduler)
    _, (off,) = run(h, rec, "img2img", None, denoising_strength=0.7, **fields)
    _, (on,) = run(h, rec, "img2img", 4, denoising_strength=0.7, **fields)
    check_levels(off, on, txt[4].sigma, encode_empty(model, 64, 64))
    _, (txt_on,) = run(h, rec, "txt2img", 4, steps=12, sampler_name="Euler", scheduler=scheduler)
    assert [is_empty(e.uncond, encode_empty(model, 64, 64)) for e in txt_on] == [i < 4 for i in range(len(txt_on))]


def test_no_uncond_is_a_logged_no_op(ext_log):
    """Forks pass text_uncond=None at CFG scale 1: nothing to delay, one info line, no error, no state change."""
    from types import SimpleNamespace

    from lib_negative_delay.settings import DelaySettings, GenerationState
    from lib_negative_delay.webui import generation

    state = GenerationState(settings=DelaySettings(True, 3))
    state.prepared, state.counting = True, True
    p = SimpleNamespace(sampler_name="Euler", **{generation.STATE_ATTR: state})
    denoiser = SimpleNamespace(p=p, step=0, sampler=None)
    for step in range(3):
        denoiser.step = step
        params = SimpleNamespace(denoiser=denoiser, sampling_step=0, sigma=torch.tensor([1.0]), text_uncond=None)
        generation.on_cfg_denoiser(params)
        assert params.text_uncond is None
    assert not state.failed
    assert sum("nothing to delay" in m for m in ext_log.messages) == 1
    assert not ext_log.at(logging.ERROR) and not ext_log.at(logging.WARNING)
