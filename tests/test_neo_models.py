"""Forge Neo's models other than SD (issue 22), through the stand-in's ``neo`` flavour and the fake engines of
``webui_standin/fake_neo_models.py``: before the switch the uncond rows are exactly Neo's own empty negative (its own
token length, the pass's guidance), from it the user's negative; encoding the empty prompt leaves the sampling shift
alone; auto-detect falls back to the fixed delay with one line; what is not supported is refused with one line."""

from __future__ import annotations

import logging

import fork_flavour
import harness
import numpy as np
import pytest
import torch
from conftest import ROOT, TITLE, Recorder
from fake_neo_models import ENGINES, Chroma, Flux

ARCHITECTURES = sorted(ENGINES)


@pytest.fixture
def start():
    """start(engine, host="neo") -> (model, recorder): the stand-in as ``host`` with a fake engine loaded."""

    def run(engine: str, host: str = "neo"):
        model = ENGINES[engine]()
        harness.start(str(ROOT), model, host=host)
        recorder = Recorder()
        from modules import script_callbacks

        script_callbacks.on_cfg_denoiser(recorder)
        return model, recorder

    yield run
    fork_flavour.select("a1111")


def generate(rec: Recorder, args: list | None = None, **fields):
    rec.clear()
    fields.setdefault("prompt", "a cat on a sofa")
    fields.setdefault("negative_prompt", "glasses, hat")
    fields.setdefault("seed", 5)
    fields.setdefault("steps", 6)
    if args is not None:
        fields["alwayson_scripts"] = {TITLE: {"args": args}}
    return harness.txt2img(**fields)


def unconds(rec: Recorder) -> list:
    return [e.uncond for e in rec.evaluations if e.uncond is not None]


def same(a, b) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a.shape == b.shape and torch.equal(a, b)


ROUNDING = 1e-4  # float rounding between an auto switch and its fixed delay (pixels are in [0, 1])
CHANGED = 1e-2  # a real difference


def pixels(res) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.float32) for image in res.images]


@pytest.mark.parametrize("engine", ARCHITECTURES)
def test_rows_before_the_switch_are_neos_own_empty_negative(start, engine, ext_log):
    _, rec = start(engine)
    generate(rec, args=[False, 0], negative_prompt="", batch_size=2)
    empty = unconds(rec)[0]
    generate(rec, args=[False, 0], batch_size=2)
    negative = unconds(rec)[0]
    assert not same(empty, negative)
    generate(rec, args=[True, 2], batch_size=2)
    seen = unconds(rec)
    assert len(seen) == 6
    assert all(same(u, empty) for u in seen[:2]) and all(same(u, negative) for u in seen[2:])
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)


@pytest.mark.parametrize("engine", ARCHITECTURES)
def test_a_delay_past_the_last_step_is_the_image_of_an_empty_negative(start, engine):
    """Bit for bit: the empty prompt keeps its own token length (joint attention would notice repeated tokens)."""
    _, rec = start(engine)
    plain = pixels(generate(rec, args=[False, 0], negative_prompt=""))
    never = pixels(generate(rec, args=[True, 6]))
    assert np.array_equal(plain[0], never[0])
    assert not np.array_equal(never[0], pixels(generate(rec, args=[False, 0]))[0])


def test_token_chunks_would_change_a_joint_attention_image(start, monkeypatch):
    """Why ``token_chunks`` is off for these engines: repeating the empty prompt's rows to the negative's length (what
    is exact for SD's cross-attention) gives another image on a model that pools text rows with image tokens."""
    from lib_negative_delay.webui import architecture

    _, rec = start("chroma")
    plain = pixels(generate(rec, args=[False, 0], negative_prompt="", prompt="a cat sat"))
    monkeypatch.setitem(architecture.NEO, "Chroma", architecture.Architecture("Chroma", auto=False))
    # with Chroma's end and padding rows "glasses glasses" is 4 rows, the empty prompt 2 (a whole multiple), the
    # prompt 5: Neo batches neither with the prompt (least common multiples over 4 times the shorter), so the uncond
    # is evaluated at the length it is given
    repeated = pixels(generate(rec, args=[True, 6], prompt="a cat sat", negative_prompt="glasses glasses"))
    assert not np.array_equal(plain[0], repeated[0])


def test_flux_guidance_of_the_empty_prompt_is_the_pass_distilled_cfg(start):
    _, rec = start("flux")
    fields = dict(distilled_cfg_scale=5.0, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=3)
    fields.update(denoising_strength=0.6, hr_cfg=7.0, hr_distilled_cfg=2.0)
    generate(rec, args=[False, 0], negative_prompt="", **fields)
    own = unconds(rec)
    generate(rec, args=[True, 10], **fields)  # never switches: every row is the empty prompt
    ours = unconds(rec)
    assert len(ours) == len(own) == 9
    assert all(same(a, b) for a, b in zip(ours, own, strict=True))
    assert [float(u["guidance"][0]) for u in ours] == [5.0] * 6 + [2.0] * 3


def test_wan_shift_is_left_as_neo_set_it(start):
    """Encoding the empty prompt sets Wan's shift; passing the shift in place leaves every evaluation's shift and the
    refiner's as Neo had them, also when the hires pass has another shift and the conds come from Neo's cache."""
    from fake_neo_models import _wan_module

    fields = dict(distilled_cfg_scale=5.0, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=3)
    fields.update(denoising_strength=0.6, hr_cfg=7.0, hr_distilled_cfg=9.0)
    runs = {}
    for enabled in (False, True):
        model, rec = start("wan")  # a fresh model and cond cache each time
        for _ in range(2):  # the second generation takes its conds from Neo's cache: no encoding sets the shift
            model.predictor.seen.clear()
            generate(rec, args=[enabled, 3], **fields)
            runs.setdefault(enabled, []).append((list(model.predictor.seen), _wan_module().refiner_shift))
    assert runs[True] == runs[False]
    assert runs[False][0][0] == [5.0] * 6 + [9.0] * 3 and runs[False][1][0] == [9.0] * 9


class ScriptedCosines:
    """Stands in for the detector's cosine in ``forge_auto``: per probed step, a value per image (switch at or above
    the threshold), so that the two images of a batch switch at chosen steps whatever the fake model computes."""

    def __init__(self, switch_at: list[int]) -> None:
        self.switch_at = switch_at
        self.calls: list[int] = []  # the rows asked about, per call

    def __call__(self, cond, uncond, negative):
        step = len(self.calls) + 1  # the window starts at step 1 and every step is probed
        self.calls.append(cond.shape[0])
        undecided = [i for i, at in enumerate(self.switch_at) if at >= step]  # rows still probed, in order
        return torch.tensor([1.0 if self.switch_at[i] == step else -1.0 for i in undecided][: cond.shape[0]])


AUTO = [True, 6, True, 0.5, 1, 5]  # window steps 1-5 of 8, fallback 6


def auto_steps(res) -> list[int]:
    return [int(x) for x in res.infotexts[0].split("Negative delay steps: ")[1].split(",")[0].split()]


@pytest.mark.parametrize("engine", ["qwen-image", "wan"])
def test_auto_on_the_one_image_engines_switches_like_the_fixed_delay(start, engine, monkeypatch, ext_log):
    """Qwen-Image and Wan (Neo runs one image at a time): the measurement decides step 2 and the image is the fixed
    delay 2's. Qwen-Image's prompt (6 tokens) and negative (4) share a batch at 12 tokens, its empty prompt (1) does
    not: only a negative evaluated beside the prompt gives what the fixed delay's batch gives."""
    from lib_negative_delay.webui import forge_auto

    model, rec = start(engine)
    monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2]))
    auto = generate(rec, args=AUTO, steps=8)
    assert auto_steps(auto) == [2]
    fixed = generate(rec, args=[True, 2], steps=8)
    assert np.abs(pixels(auto)[0] - pixels(fixed)[0]).max() <= ROUNDING
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)


@pytest.mark.parametrize("engine", ["chroma", "flux"])
@pytest.mark.parametrize("sampler", ["Euler", "Heun"])
def test_auto_switch_at_k_gives_each_image_of_a_batch_its_fixed_delay_k(start, engine, sampler, monkeypatch, ext_log):
    """Images of one batch switching at steps 2 and 4. Chroma's empty prompt is shorter than the negative, so the
    batch cannot mix rows: every uncond row stays the empty prompt while the images differ (steps 2-3) and the image
    that switched gets the negative's share in the post-CFG hook, at every evaluation (Heun: two a step). Flux pads
    both to 8 rows and mixes them as SD does."""
    from lib_negative_delay.webui import forge_auto

    model, rec = start(engine)
    monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2, 4]))
    fields = dict(steps=8, batch_size=2, sampler_name=sampler, prompt=["a cat on a sofa", "a red dog in a box"])
    empty = unconds(rec) if generate(rec, args=[False, 0], negative_prompt="", **fields) else None
    auto = generate(rec, args=AUTO, **fields)
    assert auto_steps(auto) == [2, 4]
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)
    per_step = 2 if sampler == "Heun" else 1
    mixed = unconds(rec)[2 * per_step : 4 * per_step]  # steps 2 and 3
    if engine == "chroma":
        assert all(same(u, empty[0]) for u in mixed)  # the empty prompt in every row, its own length
    else:
        assert all(not same(u, empty[0]) and same(u[1:], empty[0][1:]) for u in mixed if not isinstance(u, dict))
    for i, k in enumerate((2, 4)):
        fixed = generate(rec, args=[True, k], **fields)
        assert np.abs(pixels(auto)[i] - pixels(fixed)[i]).max() <= ROUNDING, (i, k)
    plain = generate(rec, args=[True, 8], **fields)  # never: image 0 really differs where it was carried
    assert np.abs(pixels(auto)[0] - pixels(plain)[0]).max() > CHANGED


@pytest.mark.parametrize(
    ("prompt", "per_image"),
    [
        ("a cat on a sofa", 1),  # 7 tokens (Chroma: the words, an end and a pad token) beside the negative's 5: apart
        ("a red dog", 1),  # 5 beside 5: one batch without repetition; the negative alone is exact
        ("a red dog in a big box today", 2),  # 10 beside 5: Neo repeats the negative twice to batch them
    ],
)
def test_auto_on_a_flow_engine_costs_one_extra_row_per_image_and_measured_step(start, monkeypatch, prompt, per_image):
    """Euler, switches at 2 and 4: steps 1-4 are measured (the carried image rides on the measurement of step 3), one
    extra call each over the images' negative, and their prompt too where Neo would batch the two by repeating their
    tokens (which a joint-attention model notices); nothing else."""
    from lib_negative_delay.webui import forge_auto

    model, rec = start("chroma")
    monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2, 4]))
    fields = dict(steps=8, batch_size=2, prompt=prompt)
    model.reset_calls()
    generate(rec, args=AUTO, **fields)
    auto_rows = sum(c.x_shape[0] for c in model.calls)
    model.reset_calls()
    generate(rec, args=[True, 2], **fields)
    fixed_rows = sum(c.x_shape[0] for c in model.calls)
    assert auto_rows - fixed_rows == per_image * 2 * 4


def test_the_hires_pass_carries_each_image_from_its_own_level(start, monkeypatch, ext_log):
    """The hires pass of an auto run reuses each image's switch step; Chroma's rows cannot mix, so there too the
    image that switched earlier is carried by the post-CFG hook."""
    from lib_negative_delay.webui import forge_auto

    _, rec = start("chroma")
    monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2, 6]))
    fields = dict(steps=8, batch_size=2, prompt=["a cat on a sofa", "a red dog in a box"], enable_hr=True)
    fields.update(hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.9, hr_cfg=7.0)
    auto = generate(rec, args=[True, 6, True, 0.5, 1, 7], **fields)
    assert auto_steps(auto) == [2, 6]
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)
    for i, k in enumerate((2, 6)):
        fixed = generate(rec, args=[True, k], **fields)
        assert np.abs(pixels(auto)[i] - pixels(fixed)[i]).max() <= ROUNDING, (i, k)


def test_a_sampler_that_skips_the_hook_while_carrying_switches_the_whole_batch(start, monkeypatch, ext_log):
    """The carried image's negative comes from the post-CFG hook; when a sampler stops calling it (from step 3 here,
    after image 0 switched at 2), the images can no longer differ: one warning each for the lost hook and the
    batch-wide switch, then the negative in every row, and the infotext records the steps used."""
    from lib_negative_delay.webui import forge_auto

    _, rec = start("chroma")
    monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2, 5]))
    real = forge_auto.Seam.post_cfg
    calls = []

    def flaky(self, args):
        calls.append(1)
        return real(self, args) if len(calls) <= 3 else args["denoised"]  # steps 0-2 as usual

    monkeypatch.setattr(forge_auto.Seam, "post_cfg", flaky)
    fields = dict(steps=8, batch_size=2, prompt=["a cat on a sofa", "a red dog in a box"])
    generate(rec, args=[False, 0], **fields)
    negative = unconds(rec)[0]
    res = generate(rec, args=[True, 6, True, 0.5, 1, 7], **fields)
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 2, warnings
    assert "did not run its post-CFG hook" in warnings[0] and "all take it from step 4" in warnings[1]
    assert auto_steps(res) == [2, 4]
    assert all(same(u, negative) for u in unconds(rec)[4:])


def test_flux_kontext_is_named_keeps_its_reference_latents_and_uses_the_fixed_delay(start, ext_log):
    """Neo marks a Kontext checkpoint in ``dynamic_args``; the reference latents the positive prompt's encoding hands
    on are still there after the empty prompt's encoding (a negative's), and auto-detect, unchecked on Kontext, falls
    back with one line naming it."""
    from fake_neo_models import neo_dynamic_args

    model, rec = start("flux")
    flags = neo_dynamic_args()
    flags["kontext"] = True
    reference = torch.ones(1, 4, 8, 8)
    model.ref_latents.append(reference)
    res = generate(rec, args=[True, 2, True, 0.5, 1, 4], batch_size=2)
    assert len(flags["ref_latents"]) == 1 and torch.equal(flags["ref_latents"][0], reference)
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "auto-detect is not available for Flux Kontext models" in warnings[0]
    assert "Negative delay steps: 2 2" in res.infotexts[0]


@pytest.mark.parametrize("host", ["forge", "neo"])
def test_refused_where_not_checked_with_one_line(start, host, ext_log, monkeypatch):
    from lib_negative_delay.webui import architecture

    if host == "neo":
        monkeypatch.setitem(architecture.NEO, "Wan", architecture.Architecture("Wan", refusal="not checked here"))
    _, rec = start("wan" if host == "neo" else "chroma", host=host)
    off = pixels(generate(rec, args=[False, 0]))
    on = pixels(generate(rec, args=[True, 3]))
    assert np.array_equal(off[0], on[0])
    errors = ext_log.at(logging.ERROR)
    assert len(errors) == 1 and "negative prompt applied as usual" in errors[0]
    assert ("not checked here" if host == "neo" else "model type Chroma is not supported") in errors[0]


def test_sd_models_in_neo_still_repeat_their_chunk(start):
    """The SD path is unchanged beside the new engines: a 90-token negative (2 chunks) gets the empty chunk twice."""
    from fake_models import FakeSD1Model

    harness.start(str(ROOT), FakeSD1Model(), host="neo")
    rec = Recorder()
    from modules import script_callbacks

    script_callbacks.on_cfg_denoiser(rec)
    generate(rec, args=[True, 2], negative_prompt=" ".join(["glasses"] * 90))
    assert [u.shape[1] for u in unconds(rec)] == [154] * 6


def test_fake_engines_model_what_the_extension_relies_on():
    """The fakes' own contract (so the tests above test the extension, not a lenient fake)."""
    from modules import prompt_parser

    chroma, flux = Chroma(), Flux()
    assert chroma.get_learned_conditioning([""]).shape[1] == 2
    assert chroma.get_learned_conditioning(["glasses"]).shape[1] == 3
    with pytest.raises(RuntimeError):
        chroma.get_learned_conditioning(["", "a b c"])
    assert flux.get_learned_conditioning(prompt_parser.SdConditioning([""]))["guidance"].tolist() == [3.5]
    with pytest.raises(AttributeError):
        ENGINES["qwen-image"]().get_learned_conditioning([""])


def test_the_analysis_sheet_on_a_flow_engine_follows_carried_images(start, monkeypatch, ext_log):
    """Chroma, auto-detect switching the images of a batch at steps 2 and 4 (carried in between, as above): a sheet per
    image after the same images, each switching where its image did. Where auto measured (steps 1-4) the sheet takes
    its negative and the batch's empty prompt; at steps 0 and 5-7 it evaluates the other one itself."""
    from lib_negative_delay import analysis
    from lib_negative_delay.webui import forge_auto

    seen = []
    draw = analysis.render
    monkeypatch.setattr(analysis, "render", lambda record, *rest: seen.append(record) or draw(record, *rest))
    model, rec = start("chroma")
    fields = dict(steps=8, batch_size=2, prompt=["a cat on a sofa", "a red dog in a box"])
    rows, results = {}, {}
    for flag in (False, True):
        monkeypatch.setattr(forge_auto, "alignment", ScriptedCosines([2, 4]))
        model.reset_calls()
        results[flag] = generate(rec, args=[*AUTO, "steps", flag], **fields)
        rows[flag] = [c.x_shape[0] for c in model.calls]
    off, on = results[False], results[True]
    assert auto_steps(on) == [2, 4] and len(on.images) == 4 and len(off.images) == 2
    assert all(np.array_equal(a, b) for a, b in zip(pixels(off), pixels(on)[:2], strict=True))
    assert [r.switch_step() for r in seen] == [2, 4] and all(len(r.columns) == 8 for r in seen)
    assert all(c.change.max() > 0 and -1 <= c.cosine <= 1 for r in seen for c in r.columns)
    # steps 0-4 alike but for the sheet's negative at step 0 (2 rows); at 5-7 its empty prompt beside the prompt, as
    # Neo batches the two at step 0 (the joint engines' rule, ``forge_auto.Seam``): 4 rows in one more call each
    assert rows[False] == [4] + [4, 2] * 4 + [2, 2] * 3
    assert rows[True] == [4, 2] + [4, 2] * 4 + [2, 2, 4] * 3
    assert not ext_log.at(logging.WARNING) and not ext_log.at(logging.ERROR)
