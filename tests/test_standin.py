"""The WebUI stand-in reproduces what a real v1.10.1 run shows the extension (see /work/shared/webui-contract.md)."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "webui_standin"))

from modules import errors, infotext_utils, processing, prompt_parser, script_callbacks, shared  # noqa: E402

from webui_standin import harness  # noqa: E402
from webui_standin.fake_models import FakeSD1Model, FakeSDXLModel  # noqa: E402

EXTENSION_SCRIPT = """
import gradio as gr

import probe_lib  # importable only while the extension root is on sys.path
from modules import scripts, script_callbacks
from modules.ui_components import InputAccordion

SEEN = probe_lib.SEEN


def on_denoiser(params):
    SEEN.append(("denoiser", params.denoiser.step, params.sampling_step, float(params.sigma[0]),
                 getattr(params.denoiser.p, "probe_enabled", None)))


script_callbacks.on_cfg_denoiser(on_denoiser, name="probe")


class ProbeScript(scripts.Script):
    def title(self):
        return "Probe Script"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with InputAccordion(False, label="Probe") as enabled:
            steps = gr.Slider(label="Probe steps", minimum=0, maximum=20, step=1, value=3)
            mode = gr.Dropdown(label="Probe mode", choices=["a", "b"], value="a")
        self.infotext_fields = [(enabled, lambda d: "Probe steps" in d), (steps, "Probe steps"),
                                (enabled, "Probe flag")]
        return [enabled, steps, mode]

    def process(self, p, enabled, steps, mode):
        p.probe_enabled = enabled
        SEEN.append(("process", enabled, steps, mode))
        if enabled:
            p.extra_generation_params["Probe steps"] = steps
            p.extra_generation_params["Probe note"] = "a, b: c"

    def process_before_every_sampling(self, p, enabled, steps, mode, **kwargs):
        SEEN.append(("pbes", p.is_hr_pass, tuple(kwargs["x"].shape), sorted(kwargs)))

    def postprocess(self, p, processed, enabled, steps, mode):
        SEEN.append(("postprocess", len(processed.images)))
"""


@pytest.fixture()
def ext_root(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "probe.py").write_text(textwrap.dedent(EXTENSION_SCRIPT))
    (tmp_path / "probe_lib.py").write_text("SEEN = []\n")
    yield str(tmp_path)
    sys.modules.pop("probe_lib", None)


@pytest.fixture()
def sd1():
    model = FakeSD1Model()
    harness.start(None, model)
    return model


def record_denoiser():
    rec: list[tuple[int, int, float]] = []
    script_callbacks.on_cfg_denoiser(
        lambda p: rec.append((p.denoiser.step, p.sampling_step, round(float(p.sigma[0]), 2)))
    )
    return rec


CONTRACT_FIRST_ORDER = [(0, 0, 14.61), (1, 0, 4.80), (2, 1, 1.27), (3, 2, 0.25), (4, 3, 0.03)]


@pytest.mark.parametrize("sampler,scheduler", [("Euler", "Karras"), ("DPM++ 2M", "Automatic")])
def test_first_order_sequence_matches_contract(sd1, sampler, scheduler):
    rec = record_denoiser()
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=5, sampler_name=sampler, scheduler=scheduler)
    assert rec == CONTRACT_FIRST_ORDER
    assert len(sd1.calls) == 5 and all(c.batch_size == 2 for c in sd1.calls)  # cond+uncond batched


def test_euler_automatic_uses_the_discrete_schedule(sd1):
    rec = record_denoiser()
    harness.txt2img(steps=5, sampler_name="Euler", scheduler="Automatic")
    assert [s for _, _, s in rec] == pytest.approx([14.61, 4.09, 1.62, 0.70, 0.03], abs=0.006)


def test_heun_second_evaluation_after_the_step_callback(sd1):
    rec = record_denoiser()
    harness.txt2img(steps=5, sampler_name="Heun", scheduler="Karras")
    assert rec[:5] == [(0, 0, 14.61), (1, 0, 4.80), (2, 0, 4.80), (3, 1, 1.27), (4, 1, 1.27)]
    assert len(rec) == 9  # last step is a plain Euler step
    assert [c.t.tolist() for c in sd1.calls[1:3]][0] == pytest.approx(sd1.calls[2].t.tolist())


def test_dpm2_second_evaluation_at_log_midpoint(sd1):
    rec = record_denoiser()
    harness.txt2img(steps=5, sampler_name="DPM2")
    sig = [s for _, _, s in rec]
    assert len(rec) == 9
    assert [x[1] for x in rec] == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    for i in (1, 3, 5, 7):  # intermediate evaluations: geometric mean of the neighbours
        assert sig[i] == pytest.approx((sig[i - 1] * sig[i + 1]) ** 0.5, rel=0.02)


def test_ddim_and_plms_pass_timesteps(sd1):
    rec = record_denoiser()
    harness.txt2img(steps=5, sampler_name="DDIM")
    assert rec == [(0, 0, 801.0), (1, 0, 601.0), (2, 1, 401.0), (3, 2, 201.0)]
    rec.clear()
    harness.txt2img(steps=5, sampler_name="PLMS")
    assert rec[:3] == [(0, 0, 801.0), (1, 0, 601.0), (2, 0, 601.0)]  # first step evaluates twice


def test_img2img_step_count(sd1):
    rec = record_denoiser()
    init = torch.rand(3, 64, 64)
    harness.img2img([init], steps=10, denoising_strength=0.5)
    assert len(rec) == 6  # t_enc = int(0.5 * 10) = 5, sampled over t_enc + 1 sigmas
    assert rec[0][2] < 14.0
    rec.clear()
    shared.opts.img2img_fix_steps = True
    harness.img2img([init], steps=10, denoising_strength=0.5)
    assert len(rec) == 10


def test_infotext_quoted_value_roundtrip(sd1):
    text = 'a cat\nNegative prompt: ugly, blurry\nSteps: 5, Sampler: Euler, Probe note: "a, b: c", Size: 64x48'
    params = infotext_utils.parse_generation_parameters(text)
    assert params["Prompt"] == "a cat" and params["Negative prompt"] == "ugly, blurry"
    assert params["Probe note"] == "a, b: c" and params["Size-1"] == "64" and params["Size-2"] == "48"
    res = harness.txt2img(prompt="a cat", negative_prompt="ugly", extra_generation_params={"Note": "x, y"})
    assert 'Note: "x, y"' in res.infotexts[0]
    assert infotext_utils.parse_generation_parameters(res.infotexts[0])["Note"] == "x, y"


def test_extension_loading_script_args_and_hooks(ext_root):
    path_before = list(sys.path)
    model = FakeSD1Model()
    harness.start(ext_root, model)
    assert sys.path == path_before and ext_root not in sys.path
    seen = sys.modules["probe_lib"].SEEN
    comps = harness.components("Probe Script")
    assert [c.label for c in comps] == ["Probe", "Probe steps", "Probe mode"]
    s = harness.script("probe script")
    assert s.args_from > 1  # built-in Refiner comes first in the args list

    res = harness.txt2img(
        script_args={"Probe Script": [True, 7]}, enable_hr=True, hr_second_pass_steps=2, denoising_strength=0.5
    )
    assert ("process", True, 7, "a") in seen
    pbes = [x for x in seen if x[0] == "pbes"]
    assert [x[1] for x in pbes] == [False, True] and pbes[1][2][-1] == 2 * pbes[0][2][-1]
    assert pbes[0][3] == ["c", "noise", "uc", "x"]
    assert all(x[4] is True for x in seen if x[0] == "denoiser")
    assert seen[-1] == ("postprocess", 1)
    assert "Probe steps: 7" in res.infotexts[0] and 'Probe note: "a, b: c"' in res.infotexts[0]

    # UI paste: callable and key fields, type conversion from the component's value
    assert harness.pasted_script_args("a\nSteps: 5, Sampler: Euler, Probe steps: 4", "Probe Script") == [True, 4.0, "a"]


def test_api_alwayson_mapping_and_script_info(ext_root):
    harness.start(ext_root, FakeSD1Model())
    seen = sys.modules["probe_lib"].SEEN
    api = harness.api()
    out = api.text2imgapi(
        {
            "prompt": "a",
            "steps": 3,
            "width": 64,
            "height": 64,
            "sampler_name": "Euler",
            "alwayson_scripts": {"PROBE SCRIPT": {"args": [True]}},
        }
    )
    assert ("process", True, 3, "a") in seen  # missing args keep the UI defaults
    assert len(out["images"]) == 1
    with pytest.raises(Exception) as ei:
        api.text2imgapi(
            {"prompt": "a", "steps": 2, "width": 64, "height": 64, "alwayson_scripts": {"no such script": {"args": []}}}
        )
    assert getattr(ei.value, "status_code", None) == 422
    info = [i for i in api.get_script_info() if i.name == "probe script"]
    assert len(info) == 2 and [a.label for a in info[0].args] == ["Probe", "Probe steps", "Probe mode"]
    assert info[0].args[1].maximum == 20 and info[0].args[2].choices == ["a", "b"]
    # infotext in the request: converted with type(component.value) - the string "False" becomes True
    seen.clear()
    api.text2imgapi(
        {
            "prompt": "a",
            "steps": 2,
            "width": 64,
            "height": 64,
            "infotext": "a\nSteps: 2, Sampler: Euler, Probe steps: 5, Probe flag: False",
        }
    )
    assert ("process", True, 5, "a") in seen


def test_callback_exceptions_are_reported_not_raised(sd1):
    def bad(params):
        raise ValueError("boom")

    script_callbacks.on_cfg_denoiser(bad)
    rec = record_denoiser()
    res = harness.txt2img(steps=2)
    assert len(res.images) == 1 and len(rec) == 2
    assert any("Error executing callback cfg_denoiser_callback" in m for m in errors.recorded)


def test_interrupt_and_failure(ext_root):
    harness.start(ext_root, FakeSD1Model())
    seen = sys.modules["probe_lib"].SEEN

    def interrupt(params):
        if params.denoiser.step == 1:
            shared.state.interrupt()

    script_callbacks.on_cfg_denoiser(interrupt)
    res = harness.txt2img(steps=5, n_iter=2)
    assert len(res.images) == 1  # the sampler returned its last latent; the second batch never started
    assert seen[-1] == ("postprocess", 1)  # v1.10.1: postprocess still runs after an interrupt

    script_callbacks.remove_callbacks_for_function(interrupt)
    seen.clear()
    harness.current().model.apply_model = None  # any exception during sampling
    with pytest.raises(TypeError):
        harness.txt2img(steps=2)
    assert not any(x[0] == "postprocess" for x in seen)


def test_token_lengths_padding_and_batching(sd1):
    long_neg = " ".join(f"w{i}" for i in range(80))
    assert sd1.get_learned_conditioning([long_neg]).shape[1] == 154
    harness.txt2img(prompt="a cat", negative_prompt=long_neg, steps=2)
    assert [(c.batch_size, c.tokens) for c in sd1.calls] == [(1, 77), (1, 154)] * 2  # separate calls
    sd1.reset_calls()
    shared.opts.pad_cond_uncond = True
    res = harness.txt2img(prompt="a cat", negative_prompt=long_neg, steps=2)
    assert [(c.batch_size, c.tokens) for c in sd1.calls] == [(2, 154)] * 2
    assert "Pad conds: True" in res.infotexts[0]
    sd1.reset_calls()
    shared.opts.pad_cond_uncond = False
    shared.opts.batch_cond_uncond = False
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=2)
    assert [c.batch_size for c in sd1.calls] == [1, 1, 1, 1]


def test_and_prompts_and_negative_prompt_editing(sd1):
    seen = []
    script_callbacks.on_cfg_denoiser(lambda p: seen.append((p.text_cond.shape[0], p.text_uncond.clone())))
    harness.txt2img(prompt="a cat AND a hat:0.5", negative_prompt="[ugly:pretty:2]", steps=4, batch_size=2)
    assert all(n == 4 for n, _ in seen)  # 2 images x 2 subprompts
    unc = [u for _, u in seen]
    assert torch.equal(unc[0], unc[2]) and not torch.equal(unc[2], unc[3])  # switches after evaluation 2
    c = prompt_parser.get_multicond_learned_conditioning(sd1, ["x AND " + " ".join(["y"] * 80)], 4)
    conds_list, tensor = prompt_parser.reconstruct_multicond_batch(c, 0)
    assert conds_list == [[(0, 1.0), (1, 1.0)]] and tensor.shape[1] == 154
    assert torch.equal(tensor[0, 77:], tensor[0, 76:77].repeat(77, 1))  # padded with the last row


def test_sdxl_empty_negative_is_zero_and_size_conditioned():
    model = FakeSDXLModel()
    harness.start(None, model)
    seen = []
    script_callbacks.on_cfg_denoiser(lambda p: seen.append(p.text_uncond))
    harness.txt2img(
        prompt="a cat",
        negative_prompt="",
        steps=2,
        width=64,
        height=64,
        enable_hr=True,
        hr_second_pass_steps=2,
        denoising_strength=0.5,
    )
    first, hires = seen[0], seen[-1]
    assert type(first).__name__ == "DictWithShape" and first.shape == first["crossattn"].shape
    assert torch.count_nonzero(first["crossattn"]) == 0
    assert not torch.equal(first["vector"], hires["vector"])  # size conditioning at the hires size
    plain = model.get_learned_conditioning(prompt_parser.SdConditioning([""], width=64, height=64))
    assert torch.count_nonzero(plain["crossattn"]) > 0  # only an all-empty *negative* batch is zeroed
    assert model.cond_stage_model_empty_prompt.abs().sum() > 0
    assert set(model.calls[0].__dict__) >= {"crossattn", "vector"} and model.calls[0].vector is not None


def test_skip_early_cond_and_ngms(sd1):
    shared.opts.skip_early_cond = 0.5
    res = harness.txt2img(steps=4)
    assert [c.batch_size for c in sd1.calls] == [1, 1, 1, 2] and "Skip Early CFG: 0.5" in res.infotexts[0]


def test_xyz_axes(sd1):
    xyz = harness.xyz()
    assert any(
        d.path.endswith("xyz_grid.py") and d.module is xyz for d in __import__("modules.scripts").scripts.scripts_data
    )
    xyz.axis_options.append(xyz.AxisOption("Probe value", int, xyz.apply_field("probe_value")))
    run = harness.run_xyz("Probe value", "1-10 [4]", "Steps", "2, 3")
    assert [c.x for c in run.cells if c.iy == 0] == [1, 4, 7, 10]
    assert {c.y for c in run.cells} == {2, 3} and all(c.p.probe_value == c.x for c in run.cells)
    assert all(len(c.processed.images) == 1 for c in run.cells)
    assert xyz.process_axis(None, xyz.find_axis_option("Steps", False), "1-10 (+3)", None) == [1, 4, 7, 10]
    assert xyz.process_axis(None, xyz.find_axis_option("CFG Scale", False), "1-2 (+0.5)", None) == [1.0, 1.5, 2.0]
    with pytest.raises(RuntimeError):
        harness.run_xyz("Sampler", "Euler, Nope")


def test_cond_cache_is_shared_between_generations(sd1):
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=2)
    n = len(sd1.encode_calls)
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=2, seed=5)
    assert len(sd1.encode_calls) == n  # WebUI reuses the cached c/uc
    harness.txt2img(prompt="a cat", negative_prompt="ugly", steps=3)
    assert len(sd1.encode_calls) == n + 2


def test_processing_copy_shares_extra_generation_params(sd1):
    p = harness.build_p(prompt="x")
    from copy import copy

    assert copy(p).extra_generation_params is p.extra_generation_params
    assert isinstance(p, processing.StableDiffusionProcessingTxt2Img)
