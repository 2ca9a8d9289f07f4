"""The extension beside other extensions that touch the same seams (issue 23).

Each script below is this project's own minimal model of one interaction, written from what the named extension
does (read in its public source; none of its code is used):

- NEG_WEIGHT: a second ``on_cfg_denoiser`` callback that re-weights ``params.text_uncond`` between the empty prompt's
  encoding and the negative (muerrilla/stable-diffusion-NPW ``scripts/npw.py``, ``Script.denoiser_callback``,
  registered in ``Script.process`` of every generation, so after ours unless the user reorders callbacks);
- COND_EDIT: a callback that appends a token chunk to ``params.text_cond`` (hako-mikan/sd-webui-negpip
  ``scripts/negpip.py``, ``denoiser_callback``: the negative-weight tokens concatenated to the positive's context;
  in A1111 it does that inside its cross-attention hook, in Forge for Flux/Z-Image on ``text_cond``);
- REGION_ORDER: a callback that reorders the positive rows in place and a ``cfg_denoised`` callback that reads the
  uncond rows and puts the positive rows back (hako-mikan/sd-webui-regional-prompter ``scripts/latent.py``,
  ``denoiser_callback_s`` / ``denoised_callback_s``, latent mode, registered in ``process``);
- HINT_BATCH: a UNet hook that raises unless it gets as many rows as its hint batch (Mikubill/sd-webui-controlnet:
  ``scripts/controlnet.py`` doubles a batch hint when ``batch_cond_uncond`` is on, ``scripts/cldm.py``
  ``ControlNet.forward`` adds it in place, ``h += guided_hint``);
- THRESHOLD_SAMPLER: a sampler registered in ``process_batch`` whose CFG denoiser replaces ``combine_denoised`` by a
  non-linear one (mcmonkeyprojects/sd-dynamic-thresholding ``scripts/dynamic_thresholding.py``, ``make_sampler`` /
  ``CustomCFGDenoiser``; ``p.sampler_name`` becomes ``<name>_dynthres<N>``);
- SELF_GUIDANCE: an extra model call on the uncond rows in ``cfg_denoised`` with the uncond captured in
  ``cfg_denoiser``, added to the result in ``cfg_after_cfg`` (ashen-sensored/sd_webui_SAG ``scripts/sag.py``;
  v0xie/sd-webui-incantations ``scripts/pag.py`` makes its extra call in ``on_cfg_denoised`` too);
- ENSEMBLE: the CFG denoiser's inner model wrapped so that every model call evaluates the UNet twice;
- CONTROL_MARK: every conditioning gets one first token row of +1024 (positive) or -1024 (negative) before the
  denoiser sees it (Mikubill/sd-webui-controlnet ``scripts/hook.py``: ``mark_prompt_context`` in ``process_sample``
  while a unit is active; its UNet hook tells cond from uncond rows by that row and strips it). Modelled as a
  ``cfg_denoiser`` callback put before ours;
- PROCESS_AGAIN: a ``postprocess_image`` hook that, after the last image of a batch, runs every script's ``process``
  on a shallow copy of ``p`` (Bing-su/adetailer ``scripts/!adetailer.py``, ``postprocess_image`` with
  ``need_call_process``: ``copy_p = copy(p)``, ``p.scripts.process(copy_p)``; the copy shares
  ``extra_generation_params`` with ``p``).
"""

from __future__ import annotations

import logging
import textwrap
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT, TITLE, Recorder, encode_empty
from test_auto import auto_args, switch_steps
from test_denoiser_swap import is_empty

NEG_WEIGHT = """
import torch
from modules import script_callbacks, shared

WEIGHT = [0.5]


def reweight(params):
    uncond = params.text_uncond
    empty = shared.sd_model.get_learned_conditioning([""])
    empty = empty.repeat(uncond.shape[0], uncond.shape[1] // empty.shape[1], 1)
    params.text_uncond = torch.lerp(empty, uncond, WEIGHT[0])


script_callbacks.on_cfg_denoiser(reweight, name="reweight")
"""

COND_EDIT = """
import torch
from modules import script_callbacks, shared


def lengthen(params):
    extra = -shared.sd_model.get_learned_conditioning(["hat"])
    cond = params.text_cond
    params.text_cond = torch.cat([cond, extra.expand(cond.shape[0], -1, -1)], dim=1)


script_callbacks.on_cfg_denoiser(lengthen, name="lengthen")
"""

REGION_ORDER = """
import torch
from modules import script_callbacks

BLENDS = []


def _order(rows, batch):
    areas = rows // batch
    return [image * areas + area for area in range(areas) for image in range(batch)]


def area_major(params):
    batch = params.text_uncond.shape[0]
    rows = params.x.shape[0] - batch
    order = _order(rows, batch)
    for name in ("x", "image_cond", "sigma"):
        tensor = getattr(params, name)
        tensor[:rows] = tensor[:rows][order].clone()
    params.text_cond[:rows] = params.text_cond[:rows][order].clone()
    BLENDS.append(batch)


def image_major(params):
    batch = BLENDS.pop()
    rows = params.x.shape[0] - batch
    order = _order(rows, batch)
    back = torch.empty_like(params.x[:rows])
    back[order] = params.x[:rows]
    uncond = params.x[rows:]
    per_image = rows // batch
    params.x[:rows] = 0.9 * back + 0.1 * uncond.repeat_interleave(per_image, dim=0)


script_callbacks.on_cfg_denoiser(area_major, name="area_major")
script_callbacks.on_cfg_denoised(image_major, name="image_major")
"""

CONTROL_MARK = """
import torch
from modules import script_callbacks


def _marked(cond, value):
    return torch.cat([torch.full_like(cond[:, :1], value), cond], dim=1)


def mark(params):
    params.text_cond = _marked(params.text_cond, 1024.0)
    params.text_uncond = _marked(params.text_uncond, -1024.0)


script_callbacks.on_cfg_denoiser(mark, name="mark")
"""

HINT_BATCH = """
from modules import scripts, shared

SEEN = []


class HintBatch(scripts.Script):
    def title(self):
        return "Hint batch"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process_before_every_sampling(self, p, *args, **kwargs):
        model = shared.sd_model
        hint_rows = p.batch_size * (2 if shared.opts.batch_cond_uncond else 1)
        plain = type(model).apply_model.__get__(model)

        def hooked(x, t, cond, *rest, **kw):
            SEEN.append(int(x.shape[0]))
            if x.shape[0] != hint_rows:
                raise RuntimeError(f"hint of {hint_rows} rows cannot be added to {x.shape[0]} rows")
            return plain(x, t, cond, *rest, **kw)

        model.apply_model = hooked

    def postprocess(self, p, processed, *args):
        shared.sd_model.__dict__.pop("apply_model", None)
"""

THRESHOLD_SAMPLER = """
import torch
from modules import scripts, sd_samplers, sd_samplers_common
from modules.sd_samplers_kdiffusion import CFGDenoiserKDiffusion

COMBINED = []


class ThresholdDenoiser(CFGDenoiserKDiffusion):
    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        plain = super().combine_denoised(x_out, conds_list, uncond, cond_scale)
        mimic = super().combine_denoised(x_out, conds_list, uncond, min(cond_scale, 3.0))
        unconditional = x_out[-uncond.shape[0]:]
        spread = (mimic - unconditional).flatten(1).abs().amax(1) / (plain - unconditional).flatten(1).abs().amax(1)
        COMBINED.append(len(conds_list))
        return unconditional + (plain - unconditional) * spread.clamp(max=1.0).view(-1, 1, 1, 1)


class ThresholdSampler(scripts.Script):
    def title(self):
        return "Threshold sampler"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process_batch(self, p, *args, **kwargs):
        base = sd_samplers.all_samplers_map[p.sampler_name]

        def constructor(model):
            sampler = base.constructor(model)
            sampler.model_wrap_cfg = ThresholdDenoiser(sampler)
            return sampler

        name = p.sampler_name + "_threshold1"
        sd_samplers.all_samplers_map[name] = sd_samplers_common.SamplerData(name, constructor, [], base.options)
        p.original_sampler_name, p.sampler_name = p.sampler_name, name

    def postprocess_batch(self, p, *args, **kwargs):
        name = p.sampler_name
        p.sampler_name = p.original_sampler_name
        del sd_samplers.all_samplers_map[name]
"""

SELF_GUIDANCE = """
from modules import script_callbacks

SAVED = {}
CALLS = []


def capture(params):
    batch = params.text_uncond.shape[0]
    SAVED.update(
        uncond=params.text_uncond, x=params.x[-batch:], sigma=params.sigma[-batch:],
        image_cond=params.image_cond[-batch:], batch=batch,
    )


def degraded(params):
    batch = SAVED["batch"]
    uncond_out = params.x[-batch:]
    blurred = 0.5 * (uncond_out + uncond_out.roll(1, dims=-1))
    cond = {"c_crossattn": [SAVED["uncond"]], "c_concat": [SAVED["image_cond"]]}
    pred = params.inner_model(blurred - (uncond_out - SAVED["x"]), SAVED["sigma"], cond=cond)
    CALLS.append(SAVED["uncond"].clone())
    SAVED.update(uncond_out=uncond_out.clone(), pred=pred + (uncond_out - blurred))


def guide(params):
    params.x = params.x + 0.5 * (SAVED["uncond_out"] - SAVED["pred"])


script_callbacks.on_cfg_denoiser(capture, name="capture")
script_callbacks.on_cfg_denoised(degraded, name="degraded")
script_callbacks.on_cfg_after_cfg(guide, name="guide")
"""

ENSEMBLE = """
import torch
from modules import script_callbacks


class Twice(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, sigma, **kwargs):
        return 0.5 * (self.inner(x, sigma, **kwargs) + self.inner(0.9 * x, sigma, **kwargs))

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


def wrap(params):
    denoiser = params.denoiser
    if not isinstance(denoiser.model_wrap, Twice):
        denoiser.model_wrap = Twice(denoiser.inner_model)


script_callbacks.on_cfg_denoiser(wrap, name="wrap")
"""

PROCESS_AGAIN = """
from copy import copy

from modules import scripts

CALLS = []


class ProcessAgain(scripts.Script):
    def title(self):
        return "Process again"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def postprocess_image(self, p, pp, *args):
        if p.batch_index == p.batch_size - 1:
            again = copy(p)
            p.scripts.process(again)
            CALLS.append(p.batch_index)
"""

KW = dict(prompt="a cat", negative_prompt="glasses", steps=6, batch_size=2, seed=5, sampler_name="Euler")


def start(tmp_path, name: str, source: str, first: bool = False):
    """The stand-in with the extension and one more (``name``); ``first``: the other's cfg_denoiser callbacks are
    moved before ours through the WebUI's callback-order setting. Returns (harness, model, recorder, module)."""
    import harness
    from fake_models import FakeSD1Model
    from modules import script_callbacks, shared

    root = tmp_path / name
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / f"{name}.py").write_text(textwrap.dedent(source))
    model = FakeSD1Model()
    harness.start(str(ROOT), model, more_extensions=[str(root)])
    theirs = [c.name for c in script_callbacks.callback_map["callbacks_cfg_denoiser"] if c.name.startswith(name)]
    shared.opts.prioritized_callbacks_cfg_denoiser = theirs if first else []  # (not reset by harness.start)
    recorder = Recorder()
    script_callbacks.on_cfg_denoiser(recorder)
    return harness, model, recorder, _module(f"{name}.py")


def _module(filename: str) -> SimpleNamespace:
    """The loaded script file's globals (its Script class, or else the functions it registered as callbacks)."""
    from modules import script_callbacks, scripts

    found = [d.module for d in scripts.scripts_data if d.path.endswith(filename)]
    if found:
        return SimpleNamespace(**vars(found[0]))
    registered = [c for cs in script_callbacks.callback_map.values() for c in cs if c.script.endswith(filename)]
    return SimpleNamespace(**(registered[0].callback.__globals__ if registered else {}))


def order() -> list[str]:
    """Names of the cfg_denoiser callbacks in the order the WebUI calls them ("ours" for this extension's)."""
    from modules import script_callbacks

    from lib_negative_delay.webui import generation

    callbacks = script_callbacks.ordered_callbacks("cfg_denoiser")
    return ["ours" if c.callback is generation.on_cfg_denoiser else c.name for c in callbacks]


def unconds_seen(model, batch: int) -> list[torch.Tensor]:
    """The uncond rows' conditioning of every full cond/uncond model call (batch_cond_uncond)."""
    return [c.crossattn[-batch:] for c in model.calls if c.batch_size == 2 * batch]


def fixed(h, delay, **kw):
    return h.txt2img(**{**KW, **kw}, alwayson_scripts={TITLE: {"args": [True, delay]}})


def auto(h, **kw):
    settings = {k: kw.pop(k) for k in ("sensitivity", "low", "high", "fallback") if k in kw}
    return h.txt2img(**{**KW, **kw}, **auto_args(**settings))


def same_images(a, b, atol=1e-5) -> bool:
    return all(torch.allclose(x, y, atol=atol) for x, y in zip(a.images, b.images, strict=True))


# --- (a) another callback edits text_uncond / text_cond -----------------------------------------------------------


@pytest.mark.parametrize("first", [False, True], ids=["theirs-after", "theirs-first"])
def test_reweighted_negative_fixed_delay_in_either_order(tmp_path, first):
    h, model, rec, npw = start(tmp_path, "neg-weight", NEG_WEIGHT, first=first)
    names = order()
    ours = names.index("ours")
    theirs = next(i for i, n in enumerate(names) if n.startswith("neg-weight"))
    assert (theirs < ours) == first
    empty = encode_empty(model, 64, 64)[0]
    negative = model.get_learned_conditioning(["glasses"])[0]
    model.reset_calls()
    res = fixed(h, 3)
    rows = unconds_seen(model, 2)
    assert len(rows) == 6
    for step, uncond in enumerate(rows):
        want = empty if step < 3 else torch.lerp(empty, negative, 0.5)
        assert torch.allclose(uncond, want.expand_as(uncond), atol=1e-6), step
    # the same image whichever runs first
    h2, *_ = start(tmp_path / "other", "neg-weight", NEG_WEIGHT, first=not first)
    assert same_images(res, fixed(h2, 3))


def test_reweighted_negative_first_auto_measures_the_weighted_negative(tmp_path, ext_log):
    h, model, rec, npw = start(tmp_path, "neg-weight", NEG_WEIGHT, first=True)
    res = auto(h, sensitivity=1.0, low=2, high=4, fallback=3)
    assert switch_steps(res.infotexts[0]) == [2, 2]
    assert not ext_log.at(logging.WARNING)
    assert same_images(res, fixed(h, 2))


def test_reweighted_negative_after_ours_auto_falls_back_visibly(tmp_path, ext_log):
    """Registered after ours (NPW's default), the other extension re-weights the negative only after our callback:
    the measurement cannot see the negative the model will get, so auto mode uses the fixed delay, and says so."""
    h, model, rec, npw = start(tmp_path, "neg-weight", NEG_WEIGHT)
    res = auto(h, sensitivity=1.0, low=2, high=4, fallback=3)
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "fixed delay 3" in warnings[0] and "after this extension" in warnings[0]
    assert switch_steps(res.infotexts[0]) == [3, 3]
    assert same_images(res, fixed(h, 3))


@pytest.mark.parametrize("first", [False, True], ids=["theirs-after", "theirs-first"])
@pytest.mark.parametrize("pad", [False, True], ids=["separate-calls", "pad-conds"])
def test_lengthened_cond_auto_equals_fixed_delay(tmp_path, ext_log, first, pad):
    """A longer positive makes the WebUI pad the uncond (or evaluate it separately) after every callback: the
    measurement's negative is padded the same way whatever the order."""
    h, model, rec, _ = start(tmp_path, "cond-edit", COND_EDIT, first=first)
    from modules import shared

    shared.opts.pad_cond_uncond = pad
    res = auto(h, sensitivity=1.0, low=2, high=4)
    assert switch_steps(res.infotexts[0]) == [2, 2]
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)
    assert same_images(res, fixed(h, 2))
    if pad:  # the probe's negative rows, padded to two chunks, joined the WebUI's own call (4 rows + 2)
        assert [c for c in model.calls if c.batch_size == 6 and c.tokens == 154]
    else:  # the WebUI evaluates cond and uncond apart: the negative rows get a call of their own
        assert [c for c in model.calls if c.batch_size == 2 and c.tokens == 154]


def test_region_rows_reordered_after_ours_auto_measures_the_right_rows(tmp_path, ext_log, monkeypatch):
    """Positive rows reordered in place after our callback (and back in cfg_denoised, after ours): the measurement
    reads each image's own positive row."""
    h, model, rec, region = start(tmp_path, "region-order", REGION_ORDER)
    from modules import script_callbacks, shared

    from lib_negative_delay.webui import probe

    outputs = []
    script_callbacks.on_cfg_denoised(lambda params: outputs.append(params.x.clone()))
    first = script_callbacks.callback_map["callbacks_cfg_denoised"][-1]
    shared.opts.prioritized_callbacks_cfg_denoised = [first.name]  # sees the model's output before anyone edits it
    seen = []
    real = probe.alignment

    def recording(pos, empty, neg):
        seen.append(pos.clone())
        return real(pos, empty, neg)

    monkeypatch.setattr(probe, "alignment", recording)
    prompt = "a cat AND a dog"
    res = auto(h, prompt=prompt, sensitivity=1.0, low=2, high=4)
    assert switch_steps(res.infotexts[0]) == [2, 2] and not ext_log.at(logging.WARNING)
    assert len(seen) == 1
    measured = outputs[2]  # area-major: area 0 of image 0, area 0 of image 1, area 1 of image 0, ...
    assert torch.equal(seen[0], measured[[0, 1]]) and not torch.equal(seen[0], measured[[0, 2]])
    assert same_images(res, fixed(h, 2, prompt=prompt))


# --- (b) a UNet hook that rejects an unexpected batch -------------------------------------------------------------


def test_hint_batch_rejects_the_measurement_auto_falls_back_to_the_fixed_delay(tmp_path, ext_log):
    from modules import errors

    h, model, rec, hint = start(tmp_path, "hint-batch", HINT_BATCH)
    res = auto(h, sensitivity=1.0, low=1, high=4, fallback=3)
    assert 2 in hint.SEEN  # the measurement's call of the 2 uncond rows was refused
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "fixed delay 3" in warnings[0] and "hint of 4 rows" in warnings[0]
    assert not ext_log.at(logging.ERROR) and not errors.recorded
    assert switch_steps(res.infotexts[0]) == [3, 3]  # the infotext says what was used
    hint.SEEN.clear()
    assert same_images(res, fixed(h, 3)) and set(hint.SEEN) == {4}


def test_hint_batch_rejects_a_sub_batch_switched_images_stay_switched(tmp_path, ext_log, monkeypatch):
    """Half-batch calls (batch_cond_uncond off) fit the hint, so the first measurement of both images runs; image 0
    switches, and the next measurement, of image 1 alone, is refused: image 0 keeps its step, image 1 gets the fixed
    delay."""
    h, model, rec, hint = start(tmp_path, "hint-batch", HINT_BATCH)
    from modules import shared

    from lib_negative_delay.webui import probe

    shared.opts.batch_cond_uncond = False
    monkeypatch.setattr(probe, "alignment", lambda pos, empty, neg: torch.tensor([1.0, -1.0][: pos.shape[0]]))
    res = auto(h, sensitivity=0.5, low=1, high=5, fallback=3)
    assert 1 in hint.SEEN
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "fixed delay 3" in warnings[0]
    assert switch_steps(res.infotexts[0]) == [1, 3]
    empty = encode_empty(model, 64, 64)
    for e in rec.evaluations:  # image 0 was measured at step 1 with the empty prompt, and switched after the call
        assert [is_empty(e.uncond[i : i + 1], empty) for i in range(2)] == [e.index <= 1, e.index < 3], e.index
    one, three = fixed(h, 1), fixed(h, 3)
    assert torch.allclose(res.images[0], one.images[0], atol=1e-5)
    assert torch.allclose(res.images[1], three.images[1], atol=1e-5)


# --- (c) a replaced CFG combine -------------------------------------------------------------------------------------


def test_replaced_combine_fixed_rows_and_auto_equal_fixed(tmp_path, ext_log):
    h, model, rec, dt = start(tmp_path, "threshold", THRESHOLD_SAMPLER)
    empty = encode_empty(model, 64, 64)
    res = fixed(h, 3, cfg_scale=12)
    assert dt.COMBINED and h.current().last_p.sampler_name == "Euler"  # it ran, and put the name back
    assert [is_empty(e.uncond, empty) for e in rec.evaluations] == [True] * 3 + [False] * 3
    assert not ext_log.at(logging.WARNING)
    res_auto = auto(h, cfg_scale=12, sensitivity=1.0, low=2, high=4)
    assert switch_steps(res_auto.infotexts[0]) == [2, 2] and not ext_log.at(logging.WARNING)
    assert same_images(res_auto, fixed(h, 2, cfg_scale=12))
    h2, *_ = start(tmp_path / "plain", "ensemble", "")  # no replaced combine: another image
    assert not same_images(res, fixed(h2, 3, cfg_scale=12), atol=1e-3)


# --- (d) extra model calls inside the CFG denoiser -------------------------------------------------------------------


def test_extra_model_call_in_cfg_denoised_does_not_confuse_the_hand_off(tmp_path, ext_log):
    h, model, rec, sag = start(tmp_path, "self-guidance", SELF_GUIDANCE)
    from lib_negative_delay.webui import generation

    empty = encode_empty(model, 64, 64)
    fixed(h, 3)
    assert len(sag.CALLS) == 6
    assert [is_empty(u, empty) for u in sag.CALLS] == [True] * 3 + [False] * 3  # it guides with what the UNet got
    sag.CALLS.clear()
    model.reset_calls()
    res = auto(h, sensitivity=1.0, low=2, high=4)
    assert switch_steps(res.infotexts[0]) == [2, 2] and not ext_log.at(logging.WARNING)
    assert not generation._HANDOFF
    # 6 full calls, one of them with the measurement's 2 negative rows joined; 6 extra calls of the other extension
    sizes = [c.batch_size for c in model.calls]
    assert sizes.count(2) == 6 and sizes.count(6) == 1 and sizes.count(4) == 5
    # at the switching step its extra call still has the empty prompt it captured before the measurement
    assert [is_empty(u, empty) for u in sag.CALLS] == [True] * 3 + [False] * 3


def test_wrapped_inner_model_auto_equals_fixed(tmp_path, ext_log):
    h, model, rec, _ = start(tmp_path, "ensemble", ENSEMBLE)
    model.reset_calls()
    res = auto(h, sensitivity=1.0, low=2, high=4)
    assert switch_steps(res.infotexts[0]) == [2, 2] and not ext_log.at(logging.WARNING)
    # the sampler's model is another extension's wrapper: the measurement is not folded into the WebUI's call but
    # gets a call of its own, through the wrapper (which calls the model twice)
    sizes = [c.batch_size for c in model.calls]
    assert sizes.count(2) == 2 and 6 not in sizes
    assert same_images(res, fixed(h, 2))


# --- ControlNet's cond/uncond marker row --------------------------------------------------------------------------


def test_control_marker_is_kept_on_the_empty_prompt_so_cond_and_uncond_stay_one_batch(tmp_path, ext_log):
    """Before the fix the empty prompt (77 tokens) replaced a marked negative (78): the WebUI then evaluated the
    uncond rows separately, and without the -1024 row ControlNet would take them for positive rows."""
    h, model, rec, _ = start(tmp_path, "mark", CONTROL_MARK, first=True)
    model.reset_calls()
    fixed(h, 3)
    assert {c.batch_size for c in model.calls} == {4}  # every step: 2 cond + 2 uncond rows in one call
    empty = encode_empty(model, 64, 64)
    for step, call in enumerate(model.calls):
        marks = call.crossattn[:, 0, :]
        assert torch.all(marks[:2] == 1024.0) and torch.all(marks[2:] == -1024.0), step
        uncond = call.crossattn[2:, 1:, :]
        assert torch.equal(uncond, empty.expand_as(uncond)) == (step < 3), step
    assert not ext_log.at(logging.ERROR) and not ext_log.at(logging.WARNING)


def test_control_marker_auto_mode_measures_and_equals_the_fixed_delay(tmp_path, ext_log):
    h, model, rec, _ = start(tmp_path, "mark", CONTROL_MARK, first=True)
    res = auto(h, sensitivity=0.5, low=1, high=5, fallback=3)
    assert not ext_log.at(logging.ERROR) and not ext_log.at(logging.WARNING)
    for i, k in enumerate(switch_steps(res.infotexts[0])):
        assert torch.allclose(res.images[i], fixed(h, k).images[i], atol=1e-5), (i, k)


# --- (f) another extension runs every script's process again on a copy of p -------------------------------------


def test_process_again_on_a_copy_keeps_the_switch_steps_of_every_image(tmp_path, ext_log):
    """ADetailer re-runs ``process`` on ``copy(p)`` after the last image: that image's infotext still has the switch
    steps auto mode recorded (before: the key was dropped, so only the first image said where it switched)."""
    h, model, rec, again = start(tmp_path, "process-again", PROCESS_AGAIN)
    res = auto(h, sensitivity=1.0, low=1, high=4, fallback=3)
    assert again.CALLS == [1]
    assert [switch_steps(info) for info in res.infotexts] == [[1, 1], [1, 1]]
    plain = fixed(h, 2)
    assert all("Negative delay: 2" in info for info in plain.infotexts) and again.CALLS == [1, 1]
