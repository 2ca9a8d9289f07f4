"""A rectified-flow model in the A1111 stand-in (issue 27): the path WebUI v1.10.1 gives SD3 (the checkpoint's
``create_denoiser``, flow levels from 1 down, img2img on the straight path) with the toy flow model's interface, and
the extension on it: the fixed delay counts steps of the shifted flow schedule, img2img follows the noise-level rule,
and auto mode switches each image like a fixed delay. Mechanics on an untrained, small ToyFlow; the trained model's
own facts at the end."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import ROOT, TITLE, Recorder

from toy.model import FLOW_WEIGHTS_DIR, ToyFlow, ToyLDM, flow_sample_sigmas, shifted_flow_sigmas

KW = dict(prompt="red circle on blue background", negative_prompt="glasses", width=32, height=32, seed=3)


@pytest.fixture(scope="module")
def small() -> ToyFlow:
    torch.manual_seed(0)
    return ToyFlow({"unet_c1": 8, "unet_c2": 16, "text_dim": 16}).eval().requires_grad_(False)


def start(model):
    import harness
    from modules import script_callbacks

    harness.start(str(ROOT), model)
    rec = Recorder()
    script_callbacks.on_cfg_denoiser(rec)
    return harness, rec


def ext(*args) -> dict:
    return {"alwayson_scripts": {TITLE: {"args": list(args)}}}


def rows(rec: Recorder, empty, negative) -> str:
    out = []
    for e in rec.evaluations:
        u = e.uncond[:1]
        out.append("E" if torch.equal(u, empty) else "N" if torch.equal(u, negative) else "?")
    return "".join(out)


def test_shifted_flow_levels_are_sd3s_helper():
    """t = 1..1000 over 1000, sigma = s t / (1 + (s - 1) t): shift 1 is the plain straight path; shift 3 keeps more
    of the schedule at high noise (SD3's default)."""
    plain = shifted_flow_sigmas(1.0)
    assert torch.allclose(plain, torch.arange(1, 1001) / 1000)
    sd3 = shifted_flow_sigmas(3.0)
    assert float(sd3[-1]) == pytest.approx(1.0) and float(sd3[499]) == pytest.approx(0.75)


def test_the_samplers_use_the_checkpoints_denoiser_on_the_flow_levels(small):
    """v1.10.1 asks the checkpoint for its denoiser before wrapping it as CompVis; txt2img starts from pure noise
    (sigma 1) and Euler visits the model's default schedule over the shifted levels."""
    h, rec = start(small)
    h.txt2img(**KW, steps=6, **ext(False, 0))
    seen = [e.sigma for e in rec.evaluations]
    assert seen == pytest.approx([float(s) for s in flow_sample_sigmas(small, 6)[:-1]], rel=1e-5)
    assert seen[0] == pytest.approx(1.0)


def test_the_fixed_delay_counts_steps_of_the_flow_schedule(small):
    h, rec = start(small)
    empty = small.get_learned_conditioning([""])
    negative = small.get_learned_conditioning(["glasses"])
    off = h.txt2img(**KW, steps=6, **ext(False, 0)).images[0]
    rec.clear()
    h.txt2img(**KW, steps=6, **ext(True, 2))
    assert rows(rec, empty, negative) == "EENNNN"
    rec.clear()
    h.txt2img(**KW, steps=6, sampler_name="Heun", **ext(True, 2))
    assert rows(rec, empty, negative) == "EEEE" + "N" * 7  # two evaluations a step, one in the last
    assert torch.equal(h.txt2img(**KW, steps=6, **ext(True, 0)).images[0], off)
    plain = h.txt2img(**{**KW, "negative_prompt": ""}, steps=6, **ext(False, 0)).images[0]
    assert torch.equal(h.txt2img(**KW, steps=6, **ext(True, 6)).images[0], plain)


def test_img2img_on_the_straight_path_follows_the_noise_level_rule(small):
    """img2img noises the image as (1 - sigma) x + sigma noise and keeps the empty prompt while its level is above
    the txt2img level of the delay's step (the README's example, 20 steps, delay 4): strength 0.9 runs the last 19
    steps and switches at its step 3, strength 0.5 (the last 11) starts below step 4's level and applies the
    negative at once."""
    h, rec = start(small)
    empty = small.get_learned_conditioning([""])
    negative = small.get_learned_conditioning(["glasses"])
    image = torch.full((3, 32, 32), 0.5)
    levels = flow_sample_sigmas(small, 20)
    for strength, want in ((0.9, "EEE" + "N" * 16), (0.5, "N" * 11)):
        rec.clear()
        h.img2img(**KW, init_images=[image], denoising_strength=strength, steps=20, **ext(True, 4))
        assert rows(rec, empty, negative) == want, strength
        assert rec.evaluations[0].sigma == pytest.approx(float(levels[20 - len(want)]), rel=1e-5)


def auto_steps(info: str) -> list[int]:
    return [int(x) for x in re.search(r"Negative delay steps: ([\d ]+)", info).group(1).split()]


@pytest.mark.skipif(not (FLOW_WEIGHTS_DIR / "config.json").exists(), reason="no flow weights")
def test_auto_on_the_flow_model_gives_each_image_its_fixed_delay():
    """The detector's cosine compares two differences of x0 predictions from one input: the same cosine as of the
    velocities (x0 = x - sigma v); an auto switch at k is the image of the fixed delay k."""
    model = ToyLDM.load(FLOW_WEIGHTS_DIR)
    assert isinstance(model, ToyFlow)
    h, _ = start(model)
    kw = {**KW, "negative_prompt": "glasses", "steps": 10, "batch_size": 4, "cfg_scale": 5.0}
    res = h.txt2img(**kw, **ext(True, 3, True, 0.25, 1, 8))
    steps = auto_steps(res.infotexts[0])
    assert len(steps) == 4 and all(1 <= s <= 8 for s in steps)
    for delay in sorted(set(steps)):
        fixed = h.txt2img(**kw, **ext(True, delay))
        for i, s in enumerate(steps):
            if s == delay:
                assert torch.allclose(fixed.images[i], res.images[i], atol=2e-4), (i, s)


class _FakeSD3:
    """A model that says SD3 the way v1.10.1 does (``is_sd3``, the SD flags off)."""

    @staticmethod
    def make():
        from fake_models import FakeSD1Model

        class FakeSD3(FakeSD1Model):
            is_sd1 = False
            is_sd3 = True

        return FakeSD3(name="fake-sd3")


def test_sd3_in_a1111_keeps_the_empty_prompts_own_length_and_offers_no_auto(ext_log):
    """SD3's tokens are CLIP then T5 for a joint-attention model: a two-chunk negative gets the empty prompt at its
    own one-chunk length (the WebUI's own empty negative), not the chunk repeated; auto-detect falls back with one
    line."""
    import logging

    h, rec = start(_FakeSD3.make())
    long_negative = " ".join(["glasses"] * 90)
    kw = dict(prompt="a cat", steps=4, seed=2)
    own = h.txt2img(**kw, negative_prompt="", **ext(False, 0))
    own_uncond = rec.evaluations[0].uncond
    rec.clear()
    never = h.txt2img(**kw, negative_prompt=long_negative, **ext(True, 4))
    assert [e.uncond.shape[1] for e in rec.evaluations] == [own_uncond.shape[1]] * 4 == [77] * 4
    assert all(torch.equal(e.uncond, own_uncond) for e in rec.evaluations)
    assert torch.equal(never.images[0], own.images[0])
    auto = h.txt2img(**kw, negative_prompt=long_negative, **ext(True, 2, True, 0.5, 1, 3))
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 2 and "auto-detect is not available for SD3 models" in warnings[1]
    assert "Negative delay steps: 2" in auto.infotexts[0]


def test_sd3_in_a_fork_is_refused_with_one_line(ext_log):
    import logging

    import fork_flavour
    import harness

    try:
        harness.start(str(ROOT), _FakeSD3.make(), host="reforge")
        off = harness.txt2img(prompt="a cat", negative_prompt="glasses", steps=4, seed=2, **ext(False, 0))
        on = harness.txt2img(prompt="a cat", negative_prompt="glasses", steps=4, seed=2, **ext(True, 2))
    finally:
        fork_flavour.select("a1111")
    assert torch.equal(off.images[0], on.images[0])
    errors = ext_log.at(logging.ERROR)
    assert len(errors) == 1 and "SD3 is not supported in reForge" in errors[0]


def test_flow_training_resumes_to_the_same_weights_and_loads_as_a_flow_model(tmp_path):
    from safetensors.torch import load_file

    from toy import train

    common = ["--iters", "4", "--batch", "4", "--c1", "8", "--c2", "16", "--text-dim", "16", "--device", "cpu"]
    common += ["--warmup", "2", "--log-every", "100", "--checkpoint-minutes", "0", "--threads", "1"]
    common += ["--objective", "flow"]
    train.main([*common, "--out", str(tmp_path / "straight")])
    train.main([*common, "--out", str(tmp_path / "resumed"), "--stop-after", "2"])
    train.main([*common, "--out", str(tmp_path / "resumed")])
    a = load_file(str(tmp_path / "straight" / "toy_shapes.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "toy_shapes.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = ToyLDM.load(tmp_path / "resumed")
    assert isinstance(model, ToyFlow) and model.config["training"]["objective"] == "flow"
    assert model.shift == 3.0 and "flow_sigmas" not in b  # derived from the config, not saved
    eps = train.main([*common[:-2], "--out", str(tmp_path / "eps")])  # the default objective is still eps
    assert eps is None and type(ToyLDM.load(tmp_path / "eps")) is ToyLDM
