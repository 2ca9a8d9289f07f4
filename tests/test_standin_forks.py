"""The stand-in's fork flavours show an extension the contract of docs/forks.md (see webui_standin/fork_flavour/)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap

import fork_flavour
import harness
import pytest
import torch
from fake_models import FakeSD1Model, FakeSDXLModel
from modules import processing, script_callbacks, sd_models, sd_samplers_cfg_denoiser, sd_samplers_timesteps, shared

FORKS = ["forge", "neo", "classic", "classic-1.8", "reforge"]
VERSIONS = {
    "forge": "2.0.1v1.10.1",
    "neo": "neo",
    "classic": "classic",
    "classic-1.8": "classic",
    "reforge": "1.0.0v2-v1.10.1RC",
}
FORGE2 = ["backend.sampling.sampling_function", "backend.sampling.condition", "backend.patcher.unet"]
FORGE1 = ["ldm_patched.modules.samplers", "modules_forge.forge_sampler", "modules_forge.unet_patcher"]
ARGS_KEYS = {
    "denoised",
    "cond",
    "uncond",
    "model",
    "uncond_denoised",
    "cond_denoised",
    "sigma",
    "model_options",
    "input",
}

PROBE_SCRIPT = """
from modules import scripts


class ForkProbe(scripts.Script):
    def title(self):
        return "Fork probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process_before_every_sampling(self, p, *args, **kwargs):
        hook = getattr(p, "probe_hook", None)
        if hook is not None:
            hook(p, kwargs)
"""


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fork_probe")
    (root / "scripts").mkdir()
    (root / "scripts" / "fork_probe.py").write_text(textwrap.dedent(PROBE_SCRIPT))
    return str(root)


@pytest.fixture
def start(probe_root):
    """start(host, model=None) -> model: the stand-in as that host with the probe script; A1111 again afterwards."""

    def run(host: str, model=None):
        model = model or FakeSD1Model()
        harness.start(None, model, host=host, more_extensions=[probe_root])
        return model

    yield run
    fork_flavour.select("a1111")


def spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a missing parent package
        return None


def record(category: str) -> list:
    seen: list = []
    getattr(script_callbacks, f"on_{category}")(seen.append)
    return seen


def rows(model) -> list[int]:
    return [call.batch_size for call in model.calls]


def post_cfg_hook(fn, **options):
    """A probe hook that registers ``fn`` as a post-CFG function on a clone of the pass's unet patcher."""

    def hook(p, kwargs):
        unet = p.sd_model.forge_objects.unet.clone()
        unet.set_model_sampler_post_cfg_function(fn, **options)
        p.sd_model.forge_objects.unet = unet

    return hook


# --- detection surface and processing fields ------------------------------------------------------------------


@pytest.mark.parametrize("host", [*FORKS, "a1111"])
def test_detection_surface(start, host):
    start(host)
    if host == "a1111":
        assert all(spec(name) is None for name in ["modules_forge.forge_version", *FORGE2, *FORGE1])
        with pytest.raises(ImportError):
            importlib.import_module("modules_forge.forge_version")
        return
    assert importlib.import_module("modules_forge.forge_version").version == VERSIONS[host]
    mine, other = (FORGE2, FORGE1) if host in ("forge", "neo") else (FORGE1, FORGE2)
    assert all(spec(name) is not None and importlib.import_module(name) for name in mine)
    assert all(spec(name) is None for name in other if not name.startswith("modules_forge."))
    assert spec("modules_forge.forge_sampler" if host in ("forge", "neo") else "backend") is None
    calc = "backend.sampling.sampling_function" if host in ("forge", "neo") else "ldm_patched.modules.samplers"
    assert callable(importlib.import_module(calc).calc_cond_uncond_batch)
    assert hasattr(importlib.import_module(calc), "calc_cond_batch") == (host == "reforge")


@pytest.mark.parametrize("host", [*FORKS, "a1111"])
def test_processing_fields(start, host):
    start(host)
    p = harness.build_p(enable_hr=True)
    assert getattr(p, "hr_cfg", "absent") == (1.0 if host in ("forge", "neo", "reforge") else "absent")
    assert getattr(p, "hr_cfg_scale", "absent") == (None if host.startswith("classic") else "absent")
    assert getattr(p, "skip_early_cond", "absent") == (0.0 if host == "classic" else "absent")
    assert getattr(p, "dynamic_clip_skip_sets", "absent") == (None if host == "reforge" else "absent")


# --- the CFG denoiser ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", FORKS)
def test_callback_sees_image_rows_and_real_sigmas_for_ddim(start, host):
    model = start(host)
    seen, denoised, after = record("cfg_denoiser"), record("cfg_denoised"), record("cfg_after_cfg")
    steps: list = []
    script_callbacks.on_cfg_denoiser(lambda params: steps.append(params.denoiser.step))
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=4, sampler_name="DDIM", batch_size=2)
    timesteps = [751, 501, 251]
    alphas = model.alphas_cumprod[timesteps]
    assert [float(s.sigma[0]) for s in seen] == pytest.approx((((1 - alphas) / alphas) ** 0.5).tolist(), rel=1e-5)
    for params in seen:
        assert params.x.shape[0] == params.sigma.shape[0] == params.image_cond.shape[0] == 2
        assert params.text_uncond.shape[0] == params.text_cond.shape[0] == 2
    assert steps == [0, 1, 2]
    assert not denoised and len(after) == 3
    assert rows(model) == ([2, 4, 4] if host == "classic-1.8" else [4, 4, 4])
    assert [call.t[0].item() for call in model.calls] == timesteps  # the real sigma's nearest training timestep


@pytest.mark.parametrize("host", FORKS)
def test_post_cfg_function_on_a_clone(start, host):
    model = start(host)
    runs: list = []

    def hook(p, kwargs):
        registration = len(p.probe_registrations)
        p.probe_registrations.append(p.is_hr_pass)
        unet = p.sd_model.forge_objects.unet.clone()

        def post_cfg(args):
            runs.append((registration, p.is_hr_pass, set(args), args))
            return args["denoised"]

        unet.set_model_sampler_post_cfg_function(post_cfg)
        p.sd_model.forge_objects.unet = unet

    after = record("cfg_after_cfg")
    p = harness.build_p(steps=4, enable_hr=True, hr_second_pass_steps=3, hr_cfg=5.0, hr_cfg_scale=5.0, probe_hook=hook)
    p.probe_registrations = []
    harness.run_p(p)
    twice = host in ("forge", "neo")
    assert p.probe_registrations == ([False, True, True] if twice else [False, True])
    assert len(runs) == len(after) > 4  # once per evaluation, in both passes
    assert [r[0] for r in runs] == [0] * 4 + [2 if twice else 1] * (len(runs) - 4)  # the first hires clone is gone
    keys = ARGS_KEYS if host == "forge" else ARGS_KEYS | {"cond_scale"}
    assert all(r[2] == keys for r in runs)
    if host != "forge":
        scales = [7.0] * 4 + [5.0] * (len(runs) - 4)
        if host == "classic-1.8":  # evaluation 0 of each pass is skipped early
            scales[0] = scales[4] = 1.0
        assert [r[3]["cond_scale"] for r in runs] == scales
    first = runs[0][3]
    assert first["sigma"].shape[0] == first["input"].shape[0] == first["cond_denoised"].shape[0] == 1
    assert first["cond"][0]["model_conds"]["c_crossattn"].cond.shape[0] == 1
    base = model.forge_objects_after_applying_lora.unet
    assert "sampler_post_cfg_function" not in base.model_options  # only clones were patched


@pytest.mark.parametrize("host", FORKS)
def test_replacing_text_uncond_reaches_the_unet(start, host):
    model = start(host)
    marked = []

    def replace(params):
        params.text_uncond = torch.full_like(params.text_uncond, 0.5)
        marked.append(params.text_cond.clone())

    script_callbacks.on_cfg_denoiser(replace)
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=3, sampler_name="Euler", batch_size=2)
    evaluated = model.calls[1:] if host == "classic-1.8" else model.calls
    assert len(evaluated) == len(marked) - (host == "classic-1.8")
    for call, cond in zip(evaluated, marked[-len(evaluated) :], strict=True):
        assert torch.equal(call.crossattn[:2], torch.full_like(call.crossattn[:2], 0.5))  # [uncond, cond] batch
        assert torch.equal(call.crossattn[2:], cond)


@pytest.mark.parametrize("host", ["forge", "reforge"])
def test_x_and_sigma_read_back_except_in_reforge(start, host):
    model = start(host)
    script_callbacks.on_cfg_denoiser(lambda params: setattr(params, "sigma", params.sigma * 0 + 1.0))
    harness.txt2img(steps=3, sampler_name="Euler")
    unit_sigma_t = model.sigma_of_t(torch.arange(1000.0)).sub(1.0).abs().argmin().item()
    assert all((call.t[0].item() == unit_sigma_t) == (host == "forge") for call in model.calls)


@pytest.mark.parametrize("host", FORKS)
def test_cfg_scale_one(start, host):
    model = start(host)
    seen, ucs, post_cfg_unconds = record("cfg_denoiser"), [], []

    def hook(p, kwargs):
        ucs.append((p.uc, kwargs["uc"]))
        unet = p.sd_model.forge_objects.unet.clone()
        unet.set_model_sampler_post_cfg_function(
            lambda args: post_cfg_unconds.append(args["uncond"]) or args["denoised"]
        )
        p.sd_model.forge_objects.unet = unet

    processed = harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=3, cfg_scale=1.0, probe_hook=hook)
    no_uc = host in ("forge", "neo")
    assert all((s.text_uncond is None) == no_uc for s in seen)
    assert [(a is None, b is None) for a, b in ucs] == [(no_uc, no_uc)]
    assert post_cfg_unconds == [None] * 3  # none to compile (Forge, Neo), dropped (Classic), not evaluated (reForge)
    assert (["ugly"] in model.encode_calls) != no_uc
    assert rows(model) == [1, 1, 1]  # the uncond is never evaluated at CFG 1
    assert processed.images[0].isfinite().all()


@pytest.mark.parametrize("host", FORKS)
def test_skip_early_rules_at_the_default(start, host):
    model = start(host)
    runs: list = []

    hook = post_cfg_hook(lambda args: runs.append(args["uncond"]) or args["denoised"])
    harness.txt2img(steps=4, probe_hook=hook)
    skips_first = host == "classic-1.8"
    assert rows(model) == ([1] if skips_first else [2]) + [2, 2, 2]
    none_when_skipped = host in ("classic", "classic-1.8", "reforge")
    assert [u is None for u in runs] == [skips_first and none_when_skipped, False, False, False]


@pytest.mark.parametrize("host", ["forge", "classic", "reforge"])
def test_disable_cfg1_optimization_under_skip_early(start, host):
    model = start(host)

    hook = post_cfg_hook(lambda args: args["denoised"], disable_cfg1_optimization=True)
    harness.txt2img(steps=4, probe_hook=hook, skip_early_cond=0.5, override_settings={"skip_early_cond": 0.5})
    skipped = {"forge": [], "classic": [1, 2], "reforge": [0, 1, 2]}[host]  # Forge honours the flag
    assert rows(model) == [1 if i in skipped else 2 for i in range(4)]


@pytest.mark.parametrize("host", ["forge", "neo", "classic", "reforge"])
def test_post_cfg_uncond_when_skipped_early(start, host):
    model = start(host)
    unconds: list = []

    hook = post_cfg_hook(lambda args: unconds.append(args["uncond"]) or args["denoised"])
    harness.txt2img(steps=4, probe_hook=hook, skip_early_cond=0.5, override_settings={"skip_early_cond": 0.5})
    skipped = [i for i, n in enumerate(rows(model)) if n == 1]
    assert skipped == ([1, 2] if host == "classic" else [0, 1, 2])
    listed = host in ("forge", "neo")  # the compiled uncond list even though it was not evaluated
    assert [u is None for u in unconds] == [i in skipped and not listed for i in range(4)]


def test_conditioning_modifier_sees_the_pass_cfg_scale(start):
    start("forge")
    scales: list = []

    def modifier(model, x, sigma, uncond, cond, cond_scale, model_options, seed):
        scales.append(cond_scale)
        return model, x, sigma, uncond, cond, cond_scale, model_options, seed

    def hook(p, kwargs):
        unet = p.sd_model.forge_objects.unet.clone()
        unet.add_conditioning_modifier(modifier)
        p.sd_model.forge_objects.unet = unet

    harness.txt2img(steps=3, enable_hr=True, hr_second_pass_steps=2, hr_cfg=4.0, probe_hook=hook)
    assert scales[:3] == [7.0] * 3 and set(scales[3:]) == {4.0}


@pytest.mark.parametrize("host", ["forge", "classic", "reforge"])
def test_extra_model_evaluation_in_a_post_cfg_function(start, host):
    model = start(host)
    name = "backend.sampling.sampling_function" if host == "forge" else "ldm_patched.modules.samplers"
    samplers = importlib.import_module(name)

    def again(args):
        if host == "reforge":
            (out,) = samplers.calc_cond_batch(args["model"], [args["cond"]], args["input"], args["sigma"], {})
        else:
            out, _ = samplers.calc_cond_uncond_batch(
                args["model"], args["cond"], None, args["input"], args["sigma"], args["model_options"]
            )
        assert torch.allclose(out, args["cond_denoised"])
        return args["denoised"]

    hook = post_cfg_hook(again)
    harness.txt2img(steps=3, batch_size=2, probe_hook=hook)
    assert rows(model) == [4, 2] * 3  # each evaluation, then the extra cond-only pass


@pytest.mark.parametrize("host", ["forge", "neo", "classic", "reforge"])
@pytest.mark.parametrize("model_class", [FakeSD1Model, FakeSDXLModel])
def test_same_image_as_a1111_with_quantized_timesteps(start, host, model_class):
    fields = dict(prompt="a cat AND a dog :0.5", negative_prompt="ugly", steps=4, seed=3)
    start("a1111", model_class())
    reference = harness.txt2img(**fields, override_settings={"enable_quantization": True}).images[0]
    start(host, model_class())
    assert torch.allclose(harness.txt2img(**fields).images[0], reference, atol=1e-5)


def test_refiner_switch_loses_the_patched_clone(start):
    start("forge")
    sd_models.register_checkpoint(FakeSD1Model(seed=5, name="refiner"))
    patched: list = []
    script_callbacks.on_cfg_denoiser(
        lambda params: patched.append("sampler_post_cfg_function" in shared.sd_model.forge_objects.unet.model_options)
    )

    hook = post_cfg_hook(lambda args: args["denoised"])
    harness.txt2img(steps=6, script_args={"Refiner": [True, "refiner", 0.5]}, probe_hook=hook)
    assert patched == [True] * 3 + [False] * 3  # no process_before_every_sampling after the switch


def test_a1111_is_restored(start):
    forge_model = start("forge")
    harness.txt2img(steps=2)
    model = start("a1111")
    assert not any(name.startswith(("modules_forge", "backend", "ldm_patched")) for name in sys.modules)
    assert processing.fork is None and sd_samplers_cfg_denoiser.fork_forward is None
    assert not hasattr(sd_samplers_timesteps.CFGDenoiserTimesteps, "classic_ddim_eps_estimation")
    assert not hasattr(forge_model, "forge_objects") and not hasattr(model, "forge_objects")
    seen, denoised = record("cfg_denoiser"), record("cfg_denoised")
    harness.txt2img(steps=4, sampler_name="DDIM", cfg_scale=1.0)
    assert [float(s.sigma[0]) for s in seen] == [751.0, 501.0, 251.0] and len(denoised) == 3
    assert all(s.text_uncond is not None and s.x.shape[0] == 2 for s in seen)
