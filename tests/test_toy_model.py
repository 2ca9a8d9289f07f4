"""Tests for the toy "shapes with hats" diffusion model, its world, and the hat detector."""

from __future__ import annotations

import pytest
import torch

from toy import presence, world
from toy.model import WEIGHTS_DIR, WEIGHTS_NAME, ToyLDM, _quick_sample, sd_alphas_cumprod
from toy.train import eval_prompts

SEEDS = list(range(16))
STEPS = 10
CFG = 7.0
# Accessory (hat) rate without a negative prompt on the fixed 16-seed set must lie in this band.
RATE_BAND = (0.25, 0.75)


@pytest.fixture(scope="module")
def model() -> ToyLDM:
    return ToyLDM.load()


@pytest.fixture(scope="module")
def rates(model: ToyLDM) -> dict[str, float]:
    prompts = eval_prompts(len(SEEDS))
    out = {}
    for key, neg in (("none", ""), ("from_0", world.ACCESSORY_WORD)):
        imgs = _quick_sample(model, prompts, neg, SEEDS, STEPS, CFG, negative_start_step=0)
        out[key] = float(presence.accessory_present(imgs).float().mean())
    return out


class PromptList(list):
    """Like the WebUI's SdConditioning: a list of prompts with extra attributes."""

    is_negative_prompt = True
    width = 32
    height = 32


def test_weights_load_and_interface(model: ToyLDM) -> None:
    assert (WEIGHTS_DIR / WEIGHTS_NAME).stat().st_size <= 10 * 1024 * 1024
    assert not model.training
    assert model.parameterization == "eps" and model.cond_stage_key == "txt"
    assert model.model.conditioning_key == "crossattn"
    assert model.is_sd1 and not model.is_sd2 and not model.is_sdxl and model.latent_channels == 3
    assert model.sd_checkpoint_info.title == "toy-shapes" and model.sd_checkpoint_info.short_title == "toy-shapes"
    assert isinstance(model.sd_model_hash, str) and len(model.sd_model_hash) == 10
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ac = model.alphas_cumprod
    assert ac.shape == (1000,)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert torch.allclose(ac.double(), torch.cumprod(1 - betas, 0), atol=1e-6)
    assert torch.allclose(sd_alphas_cumprod(), ac)


def test_apply_model_and_first_stage(model: ToyLDM) -> None:
    cond = model.get_learned_conditioning(PromptList(["red circle on blue background", "hat"]))
    assert cond.shape == (2, 16, 64)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = model.apply_model(x, torch.tensor([999.0, 500.5]), {"c_crossattn": [cond], "c_concat": []})
        eps2 = model.apply_model(x, torch.tensor([999, 500]), cond)
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert torch.allclose(eps[0], eps2[0], atol=1e-5)  # same integer timestep, dict or bare tensor
    assert model.decode_first_stage(x) is x and model.encode_first_stage(x) is x
    assert model.get_first_stage_encoding(x) is x


def test_vocabulary_error_lists_vocabulary(model: ToyLDM) -> None:
    with pytest.raises(ValueError) as err:
        model.get_learned_conditioning(["red dog on blue background"])
    msg = str(err.value)
    assert "dog" in msg
    for word in model.vocabulary():
        assert word in msg
    with pytest.raises(ValueError):
        model.validate_prompt("glasses")
    model.validate_prompt("")
    model.validate_prompt("Red circle, with hat")
    assert set(model.vocabulary()) == set(world.vocabulary())
    assert "hat" in model.vocabulary()


def test_empty_prompt_embedding_is_real(model: ToyLDM) -> None:
    empty = model.cond_stage_model_empty_prompt
    assert empty.shape == (1, 16, 64)
    assert empty.abs().mean() > 0.1
    tokens = model.tokenize([""])
    assert tokens[0, 0] != tokens[0, 2]  # BOS then EOS then PAD
    hat = model.get_learned_conditioning(["hat"])
    assert (hat - empty).abs().max() > 0.1
    assert torch.allclose(model.get_learned_conditioning([""]), empty)


def test_world_render_with_and_without_hat() -> None:
    img_hat, mask_hat = world.render_scene("circle", "red", "blue", 16.0, 20.0, 7.0, hat=True)
    img_no, mask_no = world.render_scene("circle", "red", "blue", 16.0, 20.0, 7.0, hat=False)
    assert img_hat.shape == (3, 32, 32) and mask_hat.dtype == torch.bool
    assert mask_hat.sum() >= 30 and not mask_no.any()
    assert img_hat.min() >= -1 and img_hat.max() <= 1
    diff = (img_hat - img_no).abs().sum(0) > 0
    assert torch.equal(diff, mask_hat)  # the hat changes exactly its own pixels
    assert (img_hat[:, mask_hat] == 1.0).all()
    with pytest.raises(ValueError):
        world.render_scene("hexagon", "red", "blue", 16.0, 20.0, 7.0, hat=False)
    a, _ = world.render(world.sample_scenes(8, seed=5))
    b, _ = world.render(world.sample_scenes(8, seed=5))
    c, _ = world.render(world.sample_scenes(8, seed=6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_detector_accuracy_on_ground_truth() -> None:
    assert presence.detector_accuracy(512, seed=11) >= 0.95
    assert presence.detector_accuracy(512, seed=12, noise_std=0.1) >= 0.95
    # and it is not trivially constant: a detector that always says "no" would score ~50%
    batch = world.sample_scenes(256, seed=13, hat_prob=0.5)
    imgs, masks = world.render(batch)
    pred = presence.accessory_present(imgs)
    assert 0.3 < pred.float().mean() < 0.7
    region = presence.accessory_region(imgs)
    assert (region | ~masks).all()  # the region covers every hat pixel


def test_hat_rate_without_negative_is_in_band(rates: dict[str, float]) -> None:
    assert RATE_BAND[0] <= rates["none"] <= RATE_BAND[1], rates


def test_negative_prompt_from_step_zero_removes_hats(rates: dict[str, float]) -> None:
    assert rates["from_0"] <= rates["none"] - 0.15, rates
