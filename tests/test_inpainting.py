"""Inpainting follows the img2img rule (README, "img2img, inpainting and hires fix"): every evaluation is mapped by
its noise level, whatever the mask, "Inpaint only masked", a script's mask blend or an inpainting UNet does.

The stand-in models v1.10.1's inpainting (modules/processing.py StableDiffusionProcessingImg2Img, modules/masking.py,
the CFG denoiser's mask blend); the first tests check the facts the others rely on.
"""

from __future__ import annotations

import logging
import textwrap

import pytest
import torch
from conftest import ROOT, TITLE, Recorder, encode_empty, same
from test_denoiser_swap import is_empty
from test_noise_levels import check_levels
from test_passes import split_passes, txt2img_sigmas

STEPS, DELAY, STRENGTH = 10, 4, 0.9  # the pass runs 9 of the 10 levels: its first 3 lie above the delay's level

SOFT_BLEND_SCRIPT = """
from modules import scripts

CALLS = []
ENABLED = [True]


class SoftBlendProbe(scripts.Script):
    # a minimal stand-in for soft inpainting's seam: unrounded mask, sigma-dependent blend, no final blend

    def title(self):
        return "Soft blend probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process(self, p):
        if ENABLED[0] and getattr(p, "image_mask", None) is not None:
            p.mask_round = False

    def on_mask_blend(self, p, mba):
        if not ENABLED[0]:
            return
        sigma = None if mba.sigma is None else float(mba.sigma[0])
        step = None if mba.denoiser is None else mba.denoiser.step
        CALLS.append((mba.is_final_blend, mba.denoiser, step, sigma, mba.nmask.clone()))
        if mba.is_final_blend:
            mba.blended_latent = mba.current_latent
        else:
            repaint = mba.nmask ** (1.0 / (1.0 + sigma))
            mba.blended_latent = mba.current_latent * repaint + mba.init_latent * (1 - repaint)
"""


class ImageConds:
    """What the CFG denoiser hands the UNet as image_cond (c_concat), per evaluation, after every callback."""

    def __init__(self) -> None:
        self.items: list[torch.Tensor] = []

    def __call__(self, params) -> None:
        self.items.append(params.image_cond.clone())


_last_start: list = [None, None]


def start(model_class, *more_extensions):
    """The stand-in with the extension (and `more_extensions`) on a model_class(): (harness, model, recorder, image
    conds). A test asking for the plain setup the previous test of this module had reuses it (starting costs about
    half a second), unless someone started the stand-in since."""
    import harness
    from modules import script_callbacks

    key = (model_class, more_extensions)
    if _last_start[0] == key and harness.current() is _last_start[1][0]:
        return _last_start[1][1]
    model = model_class()
    standin = harness.start(str(ROOT), model, more_extensions=more_extensions)
    rec, conds = Recorder(), ImageConds()
    script_callbacks.on_cfg_denoiser(rec)
    script_callbacks.on_cfg_denoiser(conds)
    _last_start[:] = [key, (standin, (harness, model, rec, conds))]
    return harness, model, rec, conds


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    mask = torch.zeros(height, width)
    mask[top:bottom, left:right] = 1.0
    return mask


def picture(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


def inpaint(h, rec, conds, model, delay, args=None, **fields):
    """One img2img generation with a mask (extension off when delay is None): (result, p, evaluations, image conds,
    UNet calls)."""
    rec.clear()
    conds.items.clear()
    model.reset_calls()
    fields = {"prompt": "a cat", "negative_prompt": "glasses", "steps": STEPS, "denoising_strength": STRENGTH, **fields}
    if delay is not None:
        fields["alwayson_scripts"] = {TITLE: {"args": args or [True, delay]}}
    res = h.img2img(**fields)
    (evaluations,) = split_passes(rec.evaluations)
    return res, h.current().last_p, evaluations, list(conds.items), list(model.calls)


def check_pair(h, rec, conds, model, sampler, size, **fields):
    """Off and on (delay DELAY) runs: the empty prompt (encoded at `size`) exactly above the delay's level, the
    negative's conditioning below it, the image conditioning untouched. Returns both runs."""
    threshold = txt2img_sigmas(h, rec, STEPS, sampler)[DELAY]
    off = inpaint(h, rec, conds, model, None, sampler_name=sampler, **fields)
    on = inpaint(h, rec, conds, model, DELAY, sampler_name=sampler, **fields)
    empty = encode_empty(model, *size)
    check_levels(off[2], on[2], threshold, empty)
    assert 0 < sum(is_empty(e.uncond, empty) for e in on[2]) < len(on[2])
    assert len(off[3]) == len(on[3]) and all(same(a, b) for a, b in zip(off[3], on[3], strict=True))
    assert f"Negative delay: {DELAY}" in on[0].infotexts[0]
    return off, on


# --- the stand-in's inpainting (facts the tests below rely on) ----------------------------------------------------


def test_standin_whole_picture_mask_blend_and_overlay():
    from fake_models import FakeSD1Model
    from modules import masking

    h, model, rec, conds = start(FakeSD1Model)
    init, mask = picture(64, 64), box_mask(64, 64, 16, 24, 40, 48)
    res, p, _, _, _ = inpaint(
        h, rec, conds, model, None, init_images=[init], mask=mask, inpaint_full_res=False, inpainting_fill=1
    )
    assert torch.equal(p.mask + p.nmask, torch.ones(4, 8, 8))
    assert torch.equal(p.nmask[0], box_mask(8, 8, 2, 3, 5, 6))  # blurred by 4 px, then rounded at latent size
    kept = masking.as_mask_tensor(p.mask_for_overlay) == 0
    assert torch.equal(res.images[0][:, kept], init[:, kept])  # the original is laid back where nothing is repainted
    assert not torch.allclose(res.images[0][:, mask == 1], init[:, mask == 1], atol=0.05)
    assert "Mask blur: 4" in res.infotexts[0] and "Inpaint area" not in res.infotexts[0]
    assert p.image_mask is mask and p.paste_to is None


def test_standin_only_masked_crop_and_blank_mask_fallback():
    from fake_models import FakeSD1Model

    h, model, rec, conds = start(FakeSD1Model)
    init = picture(96, 128)
    res, p, _, _, calls = inpaint(
        h,
        rec,
        conds,
        model,
        None,
        init_images=[init],
        mask=box_mask(96, 128, 40, 60, 52, 100),
        mask_blur=0,
        inpaint_full_res_padding=4,
        inpainting_fill=0,
    )
    # box 60..100 x 40..52 grown by 4 px, then to the square processing size: 48 x 48 around it
    assert p.paste_to == (56, 22, 48, 48)
    assert all(c.x_shape[2:] == (8, 8) for c in calls)  # sampled at width x height (64 x 64)
    assert tuple(res.images[0].shape) == (3, 96, 128)  # pasted back into the full picture
    assert "Inpaint area: Only masked, Masked area padding: 4, Masked content: fill" in res.infotexts[0]
    res, p, _, _, _ = inpaint(h, rec, conds, model, None, init_images=[init], mask=torch.zeros(96, 128))
    assert p.paste_to is None and p.mask is None and not p.inpaint_full_res
    assert tuple(res.images[0].shape) == (3, 64, 64)


# --- the extension under inpainting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler,fields",
    [
        ("Euler", dict(inpaint_full_res=False, inpainting_fill=1)),
        ("DPM++ 2M", dict(inpaint_full_res=False, inpainting_fill=0, inpainting_mask_invert=1, mask_blur=0)),
        ("DDIM", dict(inpaint_full_res=False, inpainting_fill=2)),  # blends before the model call
        ("Euler", dict(inpaint_full_res=True, inpaint_full_res_padding=8, inpainting_fill=3)),
    ],
)
def test_mask_switches_at_the_delays_noise_level(sampler, fields):
    from fake_models import FakeSD1Model

    h, model, rec, conds = start(FakeSD1Model)
    init, mask = picture(64, 64), box_mask(64, 64, 8, 16, 40, 36)
    _, on = check_pair(h, rec, conds, model, sampler, (64, 64), init_images=[init], mask=mask, **fields)
    assert on[1].nmask is not None


def test_only_masked_encodes_the_empty_prompt_at_the_processing_size():
    """SDXL: the crop of a 128 x 96 picture is sampled at 64 x 64; the empty prompt's size conditioning is 64 x 64,
    the negative prompt's, not the picture's."""
    from fake_models import FakeSDXLModel

    h, model, rec, conds = start(FakeSDXLModel)
    init, mask = picture(96, 128), box_mask(96, 128, 30, 70, 60, 100)
    off, on = check_pair(
        h,
        rec,
        conds,
        model,
        "Euler",
        (64, 64),
        init_images=[init],
        mask=mask,
        inpaint_full_res_padding=8,
        inpainting_fill=1,
    )
    assert on[1].paste_to is not None and (on[1].width, on[1].height) == (64, 64)
    picture_size = encode_empty(model, 128, 96)
    assert not torch.equal(picture_size["vector"], encode_empty(model, 64, 64)["vector"])
    assert not any(is_empty(e.uncond, picture_size) for e in on[2])


def test_soft_blend_hook_sees_each_evaluation(tmp_path):
    """A script's on_mask_blend (soft inpainting's seam) gets the denoiser and the evaluation's sigma for every
    evaluation and an unrounded mask; it changes the picture, and the switch stays where it was."""
    from fake_models import FakeSD1Model
    from modules import scripts

    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "soft_blend_probe.py").write_text(textwrap.dedent(SOFT_BLEND_SCRIPT))
    h, model, rec, conds = start(FakeSD1Model, str(tmp_path))
    probe = next(d.module for d in scripts.scripts_data if d.path.endswith("soft_blend_probe.py"))
    init, mask = picture(64, 64), box_mask(64, 64, 16, 16, 44, 44)
    fields = dict(init_images=[init], mask=mask, mask_blur=8, inpaint_full_res=False, inpainting_fill=1)
    off, on = check_pair(h, rec, conds, model, "Euler", (64, 64), **fields)
    calls = probe.CALLS[-len(on[2]) - 1 :]
    assert [c[0] for c in calls] == [False] * len(on[2]) + [True]
    for (_, denoiser, step, sigma, _), e in zip(calls, on[2], strict=False):
        assert denoiser.p is on[1] and step == e.index
        assert sigma == pytest.approx(e.sigma)
    soft = calls[0][4]
    assert bool(((soft > 0) & (soft < 1)).any())  # not rounded
    probe.ENABLED[0] = False
    try:
        plain = inpaint(h, rec, conds, model, DELAY, sampler_name="Euler", **fields)
    finally:
        probe.ENABLED[0] = True
    assert not torch.equal(plain[0].images[0], on[0].images[0])


@pytest.mark.parametrize(
    "size,fields",
    [
        (96, dict(inpaint_full_res=False, inpainting_fill=1)),
        (64, dict(inpaint_full_res=True, inpaint_full_res_padding=8, inpainting_fill=2)),
    ],
)
def test_inpainting_model_keeps_its_image_conditioning(size, fields):
    """9-channel UNet: the switch is the same, and every UNet call gets the same c_concat (mask + masked-image
    latent) with the extension on as off: one row of p.image_conditioning per batch row, cond and uncond alike."""
    from fake_models import FakeSD1InpaintModel

    h, model, rec, conds = start(FakeSD1InpaintModel)
    init, mask = picture(96, 96), box_mask(96, 96, 24, 24, 56, 64)
    off, on = check_pair(
        h, rec, conds, model, "Euler", (size, size), init_images=[init], mask=mask, width=size, height=size, **fields
    )
    ic = on[1].image_conditioning
    assert ic.shape[1] == 5 and set(ic[0, 0].unique().tolist()) == {0.0, 1.0}  # a real mask channel
    assert len(off[4]) == len(on[4])
    for a, b in zip(off[4], on[4], strict=True):
        assert torch.equal(a.c_concat, b.c_concat)
        assert torch.equal(b.c_concat, ic[:1].expand_as(b.c_concat))
    x, t = torch.randn(1, 4, *ic.shape[2:]), torch.tensor([500.0])
    cond = {"c_crossattn": [encode_empty(model, 64, 64)]}
    assert not torch.equal(
        model.apply_model(x, t, {**cond, "c_concat": [ic]}), model.apply_model(x, t, {**cond, "c_concat": [ic * 0]})
    )


def test_delay_zero_is_the_extension_off_when_inpainting():
    from fake_models import FakeSD1InpaintModel

    h, model, rec, conds = start(FakeSD1InpaintModel)
    fields = dict(
        init_images=[picture(96, 128)],
        mask=box_mask(96, 128, 20, 30, 70, 90),
        inpaint_full_res_padding=8,
        inpainting_fill=1,
    )
    off = inpaint(h, rec, conds, model, None, **fields)
    on = inpaint(h, rec, conds, model, 0, **fields)
    assert torch.equal(off[0].images[0], on[0].images[0])


def test_auto_mode_probe_gives_the_inpainting_unet_its_image_conditioning(ext_log):
    """Auto mode's extra evaluation of the negative prompt calls the UNet itself: each image it measures must come
    with that image's own c_concat row (two different pictures, so a row mix-up shows)."""
    from fake_models import FakeSD1InpaintModel

    h, model, rec, conds = start(FakeSD1InpaintModel)
    fields = dict(
        init_images=[picture(64, 64, seed=1), picture(64, 64, seed=2)],
        mask=box_mask(64, 64, 8, 8, 40, 48),
        inpaint_full_res=False,
        inpainting_fill=1,
        batch_size=2,
    )
    res, p, evaluations, _, calls = inpaint(h, rec, conds, model, 3, args=[True, 3, True, 0.5, 0, 3], **fields)
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)
    assert "Negative delay: auto" in res.infotexts[0]
    ic = p.image_conditioning
    assert not torch.equal(ic[0], ic[1])
    # every call: cond and uncond rows of both images; a measured step's call has the undecided images' negative
    # rows joined after them (one row per image, in batch order)
    assert len(calls) == len(evaluations) and all(torch.equal(c.c_concat[:4], torch.cat([ic, ic])) for c in calls)
    probes = [c for c in calls if c.batch_size > 4]
    assert probes
    for c in probes:
        assert any(torch.equal(c.c_concat[4:], ic[rows]) for rows in ([0], [1], [0, 1]))
