"""Which denoiser evaluations get the empty and which the real negative conditioning, driven through the
WebUI stand-in exactly as the WebUI runs the extension."""

from __future__ import annotations

import pytest
import torch
from conftest import TITLE, crossattn, encode_empty, same

from lib_negative_delay import VERSION

# step of each denoiser evaluation for a 5-step run, written out from how each k-diffusion/timesteps sampler
# evaluates the model (first order: one per step; second order: two per step, the last step one; PLMS: two in
# its first step; DDIM evaluates steps-1 times in v1.10.1)
ONE = [0, 1, 2, 3, 4]
TWO = [0, 0, 1, 1, 2, 2, 3, 3, 4]
STEPS_OF_EVALUATIONS = {
    "Euler": ONE,
    "Euler a": ONE,
    "LMS": ONE,
    "DPM++ 2M": ONE,
    "Heun": TWO,
    "DPM2": TWO,
    "DPM2 a": TWO,
    "DPM++ 2S a": TWO,
    "DPM++ SDE": TWO,
    "DDIM": [0, 1, 2, 3],
    "PLMS": [0, 0, 1, 2, 3],
}


def is_empty(uncond, empty) -> bool:
    """Every row of ``uncond`` is the empty prompt's encoding (repeated over token chunks)."""
    u, e = crossattn(uncond), crossattn(empty)[0]
    if u.shape[1] % e.shape[0]:
        return False
    chunks = u.reshape(u.shape[0], -1, *e.shape)
    ok = torch.allclose(chunks, e.expand_as(chunks), atol=1e-6)
    if isinstance(uncond, dict):
        ok = ok and torch.allclose(uncond["vector"], empty["vector"][0].expand_as(uncond["vector"]), atol=1e-6)
    return ok


def run_pair(h, rec, model, delay, tab="txt2img", **fields):
    """Run with the extension disabled and enabled; return both traces and both results."""
    rec.clear()
    model.reset_calls()
    off = h.txt2img(**fields) if tab == "txt2img" else h.img2img(**fields)
    off_evals, off_calls = list(rec.evaluations), len(model.calls)
    rec.clear()
    model.reset_calls()
    args = {"alwayson_scripts": {TITLE: {"args": [True, delay]}}}
    on = h.txt2img(**fields, **args) if tab == "txt2img" else h.img2img(**fields, **args)
    return off_evals, list(rec.evaluations), off, on, off_calls, len(model.calls)


def check_swaps(off_evals, on_evals, steps, start, empty):
    """Evaluations of steps < start got the empty conditioning; the rest got exactly the WebUI's own."""
    assert len(on_evals) == len(off_evals) == len(steps)
    for off, on, step in zip(off_evals, on_evals, steps, strict=False):
        if step < start:
            assert is_empty(on.uncond, empty), (step, start)
            assert not is_empty(off.uncond, empty)
        else:
            assert same(on.uncond, off.uncond), (step, start)


@pytest.mark.parametrize("sampler", sorted(STEPS_OF_EVALUATIONS))
@pytest.mark.parametrize("delay", [1, 2, 4])
def test_every_sampler_sd1(sd1, sampler, delay):
    h, model, rec = sd1
    off, on, *_ = run_pair(
        h, rec, model, delay, prompt="a cat", negative_prompt="glasses", steps=5, sampler_name=sampler
    )
    check_swaps(off, on, STEPS_OF_EVALUATIONS[sampler], delay, encode_empty(model, 64, 64))


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM++ SDE", "PLMS"])
def test_sdxl_dict_batch_3(sdxl, sampler):
    h, model, rec = sdxl
    off, on, *_ = run_pair(
        h,
        rec,
        model,
        2,
        prompt="a cat",
        negative_prompt="glasses",
        steps=5,
        sampler_name=sampler,
        batch_size=3,
        width=64,
        height=96,
    )
    empty = encode_empty(model, 64, 96)
    assert torch.count_nonzero(empty["crossattn"]) == 0  # the WebUI's all-empty SDXL negative is zeros
    check_swaps(off, on, STEPS_OF_EVALUATIONS[sampler], 2, empty)
    assert isinstance(on[0].uncond, dict) and on[0].uncond["crossattn"].shape[0] == 3


def test_sd1_batch_3_per_image_negatives_and_unet_inputs(sd1):
    h, model, rec = sd1
    negatives = ["glasses", "hat", "text, watermark"]
    off, on, _, _, off_calls, on_calls = run_pair(
        h, rec, model, 3, prompt="a cat", negative_prompt=negatives, steps=5, batch_size=3
    )
    empty = encode_empty(model, 64, 64)
    check_swaps(off, on, ONE, 3, empty)
    assert on_calls == off_calls  # no extra UNet evaluation
    # the UNet itself received the empty rows in the uncond half of the batched call
    first = model.calls[-5]
    assert torch.allclose(first.crossattn[3:], empty.expand(3, -1, -1), atol=1e-6)


@pytest.mark.parametrize("pad", [False, True])
def test_long_negative_keeps_token_length_and_call_count(sd1, pad):
    h, model, rec = sd1
    from modules import shared

    shared.opts.pad_cond_uncond = pad
    long_negative = " ".join(f"word{i}" for i in range(80))  # two CLIP chunks: 154 rows
    off, on, _, _, off_calls, on_calls = run_pair(
        h, rec, model, 2, prompt="a cat", negative_prompt=long_negative, steps=5, batch_size=2
    )
    assert crossattn(off[0].uncond).shape[1] == 154
    assert crossattn(on[0].uncond).shape[1] == 154
    check_swaps(off, on, ONE, 2, encode_empty(model, 64, 64))
    assert on_calls == off_calls


def test_and_prompts_and_prompt_editing_in_negative(sd1):
    h, model, rec = sd1
    off, on, *_ = run_pair(
        h, rec, model, 2, prompt="a cat AND a dog :0.5", negative_prompt="[glasses:hat:3]", steps=6, batch_size=2
    )
    assert on[0].cond.shape[0] == 4  # cond batch larger than the image batch
    check_swaps(off, on, list(range(6)), 2, encode_empty(model, 64, 64))
    assert not same(off[2].uncond, off[5].uncond)  # the edit from "glasses" to "hat" still happens


@pytest.mark.parametrize("opt", [{"skip_early_cond": 0.3}, {"s_min_uncond": 2.0}, {"batch_cond_uncond": False}])
def test_other_uncond_settings(sd1, opt):
    h, model, rec = sd1
    from modules import shared

    fields = {}
    for key, value in opt.items():
        if key == "s_min_uncond":
            fields[key] = value
        else:
            setattr(shared.opts, key, value)
    off, on, off_res, on_res, off_calls, on_calls = run_pair(
        h, rec, model, 2, prompt="a cat", negative_prompt="glasses", steps=5, **fields
    )
    check_swaps(off, on, ONE, 2, encode_empty(model, 64, 64))
    assert on_calls == off_calls


def test_delay_zero_is_identical_to_disabled(sd1):
    h, model, rec = sd1
    off, on, off_res, on_res, *_ = run_pair(
        h, rec, model, 0, prompt="a cat", negative_prompt="glasses", steps=5, sampler_name="Heun", batch_size=2
    )
    assert all(same(a.uncond, b.uncond) for a, b in zip(off, on, strict=False))
    assert all(torch.equal(a, b) for a, b in zip(off_res.images, on_res.images, strict=False))
    assert "Negative delay: 0" in on_res.infotexts[0]
    assert "Negative delay" not in off_res.infotexts[0]


def test_delay_changes_the_image_and_is_deterministic(sd1):
    h, model, rec = sd1
    kw = dict(prompt="a cat", negative_prompt="glasses", steps=5, alwayson_scripts={TITLE: {"args": [True, 2]}})
    a, b = h.txt2img(**kw), h.txt2img(**kw)
    off = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=5)
    assert torch.equal(a.images[0], b.images[0])
    assert not torch.equal(a.images[0], off.images[0])


def test_delay_beyond_steps_never_applies_and_warns_once(sd1, ext_log):
    h, model, rec = sd1
    import logging

    off, on, _, on_res, *_ = run_pair(h, rec, model, 9, prompt="a cat", negative_prompt="glasses", steps=5, n_iter=2)
    assert all(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in on)
    assert len(on) == 10
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "never applied" in warnings[0]
    assert "Negative delay: 9" in on_res.infotexts[0]


def test_one_log_line_per_generation(sd1, ext_log):
    h, model, rec = sd1
    h.txt2img(
        prompt="a cat",
        negative_prompt="glasses",
        steps=8,
        batch_size=2,
        n_iter=2,
        alwayson_scripts={TITLE: {"args": [True, 3]}},
    )
    assert ext_log.messages == [f"negative prompt from step 3 of 8 [AUTOMATIC1111, extension v{VERSION}]"]


def test_batch_count_swaps_every_iteration(sd1):
    h, model, rec = sd1
    off, on, *_ = run_pair(h, rec, model, 2, prompt="a cat", negative_prompt="glasses", steps=5, n_iter=3)
    check_swaps(off, on, ONE * 3, 2, encode_empty(model, 64, 64))
