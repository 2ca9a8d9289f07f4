"""img2img and the hires-fix pass: the delay marks a noise level (see README, "img2img and hires fix")."""

from __future__ import annotations

import pytest
import torch
from conftest import TITLE, encode_empty, same
from test_denoiser_swap import is_empty


def split_passes(evaluations):
    passes = []
    for e in evaluations:
        if e.index == 0:
            passes.append([])
        passes[-1].append(e)
    return passes


def txt2img_sigmas(h, rec, steps, sampler):
    rec.clear()
    h.txt2img(prompt="a cat", negative_prompt="glasses", steps=steps, sampler_name=sampler)
    return [e.sigma for e in rec.evaluations]


def generate(h, rec, tab, delay, **fields):
    rec.clear()
    args = {"alwayson_scripts": {TITLE: {"args": [True, delay]}}} if delay is not None else {}
    res = h.txt2img(**fields, **args) if tab == "txt2img" else h.img2img(**fields, **args)
    return res, split_passes(rec.evaluations)


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])
@pytest.mark.parametrize("strength,fix", [(0.5, False), (0.8, False), (0.3, False), (0.5, True), (0.75, True)])
@pytest.mark.parametrize("delay", [2, 5])
def test_img2img_switches_at_the_delays_noise_level(sd1, sampler, strength, fix, delay):
    h, model, rec = sd1
    from modules import shared

    steps = 12
    threshold = txt2img_sigmas(h, rec, steps, sampler)[delay]
    shared.opts.img2img_fix_steps = fix
    init = [torch.rand(3, 64, 64)]
    fields = dict(
        init_images=init,
        prompt="a cat",
        negative_prompt="glasses",
        steps=steps,
        sampler_name=sampler,
        denoising_strength=strength,
    )
    _, (off,) = generate(h, rec, "img2img", None, **fields)
    res, (on,) = generate(h, rec, "img2img", delay, **fields)
    empty = encode_empty(model, 64, 64)
    assert len(on) == len(off)
    for a, b in zip(off, on, strict=False):
        if b.sigma > threshold * (1 + 1e-5):  # above the delay's noise level: still the empty prompt
            assert is_empty(b.uncond, empty), (b.index, b.sigma, threshold)
        else:
            assert same(a.uncond, b.uncond), (b.index, b.sigma, threshold)
    assert f"Negative delay: {delay}" in res.infotexts[0]


def test_low_strength_img2img_applies_from_the_first_step(sd1):
    h, model, rec = sd1
    _, (on,) = generate(
        h,
        rec,
        "img2img",
        3,
        init_images=[torch.rand(3, 64, 64)],
        prompt="a cat",
        negative_prompt="glasses",
        steps=20,
        denoising_strength=0.4,
    )
    assert not any(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on)


@pytest.mark.parametrize("delay,hr_steps", [(2, 6), (4, 6), (5, 0)])
def test_hires_pass(sdxl, delay, hr_steps):
    h, model, rec = sdxl
    steps = 6
    fields = dict(
        prompt="a cat",
        negative_prompt="glasses",
        steps=steps,
        sampler_name="Euler",
        enable_hr=True,
        hr_scale=2,
        denoising_strength=0.5,
        hr_second_pass_steps=hr_steps,
        width=64,
        height=64,
    )
    _, (off1, off2) = generate(h, rec, "txt2img", None, **fields)
    _, (on1, on2) = generate(h, rec, "txt2img", delay, **fields)
    first_empty, hires_empty = encode_empty(model, 64, 64), encode_empty(model, 128, 128)
    assert not torch.equal(first_empty["vector"], hires_empty["vector"])  # size conditioning differs
    for a, b in zip(off1, on1, strict=False):
        assert is_empty(b.uncond, first_empty) if b.index < delay else same(a.uncond, b.uncond)
    threshold = txt2img_sigmas(h, rec, hr_steps or steps, "Euler")[delay]
    for a, b in zip(off2, on2, strict=False):
        if b.sigma > threshold * (1 + 1e-5):
            assert is_empty(b.uncond, hires_empty), (b.index, b.sigma, threshold)
        else:
            assert same(a.uncond, b.uncond)
    expected_hires_empty = {(2, 6): 0, (4, 6): 3, (5, 0): 5}[(delay, hr_steps)]  # 6 steps cut from 12, offset 6
    assert sum(is_empty(b.uncond, hires_empty) for b in on2) == expected_hires_empty
