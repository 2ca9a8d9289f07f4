"""The delay as a share of the schedule (``20%``): one setting that names the same moment at any step count.

p % of S sampling steps is the delay ceil(p * S / 100): where that is a whole number N, every evaluation gets exactly
what delay N gives it (txt2img, img2img, hires; one- and two-evaluation samplers); a fraction of a step rounds up.
The unit travels through the API (7th argument, or a value written ``"20%"``), the infotext, paste, "Send to" and
X/Y/Z, and everything written before shares existed keeps its meaning.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from conftest import TITLE, same

from lib_negative_delay.settings import Delay, OnceLog, parse_delay_value, parse_unit


def run(h, rec, args, tab="txt2img", **fields):
    """(images, per-evaluation uncond) of one generation with the panel args ``args`` (None: extension off)."""
    rec.clear()
    extra = {"alwayson_scripts": {TITLE: {"args": args}}} if args is not None else {}
    res = (h.txt2img if tab == "txt2img" else h.img2img)(**fields, **extra)
    return res, [e.uncond for e in rec.evaluations]


def assert_same_run(a, b):
    (res_a, unconds_a), (res_b, unconds_b) = a, b
    assert len(unconds_a) == len(unconds_b)
    assert all(same(x, y) for x, y in zip(unconds_a, unconds_b, strict=True))
    images = zip(res_a.images, res_b.images, strict=True)
    assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in images)


# --- resolution (pure) ----------------------------------------------------------------------------------------


# shared with the page's JavaScript (tests/js/logic.test.js runs the same cases in Node): the two cannot drift
CASES = json.loads((Path(__file__).parent / "delay_cases.json").read_text())


@pytest.mark.parametrize("share,steps,expected", CASES["share_to_step"])
def test_share_resolves_to_the_step_it_reaches_rounding_up(share, steps, expected):
    assert Delay(share, percent=True).steps(steps) == expected


@pytest.mark.parametrize("value,percent,steps,text", CASES["describe"])
def test_descriptions_are_the_ones_the_panel_title_shows(value, percent, steps, text):
    assert Delay(value, percent).describe(steps) == text


def test_share_resolution_is_exact_where_floats_are_not():
    # 0.7 * 10 = 7.000000000000001 in floats: ceil would give 8 steps
    assert Delay(0.7 * 100, percent=True).steps(10) == 7 and Delay(7, percent=True).steps(100) == 7
    assert Delay(28.000000000000004, percent=True).steps(25) == 8  # not a decimal share: 7.000000000000001 steps


@pytest.mark.parametrize(
    "value,unit,expected",
    [
        ("20%", "steps", Delay(20, True)),
        (" 12.5 % ", "steps", Delay(12.5, True)),
        (20, "%", Delay(20, True)),
        ("20", "%", Delay(20, True)),
        (4, "steps", Delay(4)),
        ("4", "steps", Delay(4)),
        (4.0, "steps", Delay(4)),
        (Delay(30, True), "steps", Delay(30, True)),
    ],
)
def test_parse_delay_value(value, unit, expected):
    assert parse_delay_value(value, "test", unit, OnceLog()) == expected


def test_out_of_range_shares_clamp_once_and_garbage_is_refused(ext_log):
    once = OnceLog()
    for _ in range(3):
        assert parse_delay_value("150%", "API", warn=once) == Delay(100, True)
        assert parse_delay_value(-5, "API", "%", once) == Delay(0, True)
        assert parse_delay_value("soon%", "API", warn=once) is None
        assert parse_delay_value("4.5", "API", warn=once) is None  # steps stay whole
    assert len(ext_log.at(logging.WARNING)) == 4


def test_units_and_their_text():
    assert [parse_unit(u, "t", OnceLog()) for u in ("steps", "%", "percent", " Step ", None)] == [
        "steps",
        "%",
        "%",
        "steps",
        "steps",
    ]
    assert str(Delay(20, True)) == "20%" and str(Delay(12.5, True)) == "12.5%" and str(Delay(4)) == "4"
    assert Delay(20, True).describe(30) == "20 % — step 6 of 30" and Delay(4).describe(20) == "step 4 of 20"


def test_unknown_unit_is_steps_with_one_warning(ext_log):
    once = OnceLog()
    assert parse_unit("minutes", "API", once) == "steps" and parse_unit("minutes", "API", once) == "steps"
    assert len(ext_log.at(logging.WARNING)) == 1 and "minutes" in ext_log.messages[0]


# --- exactness in the stand-in --------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM++ 2M", "PLMS", "UniPC", "DPM adaptive"])
@pytest.mark.parametrize("steps,share,delay", [(10, 30, 3), (20, 20, 4), (8, 25, 2)])
def test_share_equals_the_whole_step_delay_in_txt2img(sd1, sampler, steps, share, delay):
    h, *_ = sd1
    fields = dict(prompt="a cat", negative_prompt="glasses", steps=steps, sampler_name=sampler, seed=5)
    by_steps = run(h, sd1[2], [True, delay], **fields)
    assert_same_run(by_steps, run(h, sd1[2], [True, f"{share}%"], **fields))
    assert_same_run(by_steps, run(h, sd1[2], [True, share, False, 0.3, 4, 7, "%"], **fields))
    off = run(h, sd1[2], None, **fields)
    assert not all(same(a, b) for a, b in zip(off[1], by_steps[1], strict=True))  # the delay did something


@pytest.mark.parametrize("steps,share,delay", [(30, 15, 5), (20, 12.5, 3), (10, 33, 4)])
def test_a_fraction_of_a_step_rounds_up(sd1, steps, share, delay):
    h, model, rec = sd1
    fields = dict(prompt="a cat", negative_prompt="glasses", steps=steps, sampler_name="Euler", seed=2)
    assert_same_run(run(h, rec, [True, delay], **fields), run(h, rec, [True, f"{share}%"], **fields))


@pytest.mark.parametrize("sampler", ["Euler", "Heun"])
@pytest.mark.parametrize("strength", [0.4, 0.75])
def test_share_equals_the_step_delay_in_img2img(sd1, sampler, strength):
    h, model, rec = sd1
    fields = dict(
        init_images=[torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))],
        prompt="a cat",
        negative_prompt="glasses",
        steps=20,
        sampler_name=sampler,
        denoising_strength=strength,
        seed=3,
    )
    by_steps = run(h, rec, [True, 6], "img2img", **fields)
    assert_same_run(by_steps, run(h, rec, [True, "30%"], "img2img", **fields))


@pytest.mark.parametrize("hr_steps", [0, 5])
def test_share_equals_the_step_delay_with_hires_fix(sdxl, hr_steps):
    h, model, rec = sdxl
    fields = dict(
        prompt="a cat",
        negative_prompt="glasses",
        steps=10,
        sampler_name="Euler",
        enable_hr=True,
        hr_scale=2,
        denoising_strength=0.6,
        hr_second_pass_steps=hr_steps,
        width=64,
        height=64,
    )
    by_steps = run(h, rec, [True, 4], **fields)
    assert_same_run(by_steps, run(h, rec, [True, "40%"], **fields))


def test_auto_window_in_percent_equals_the_same_steps(sd1):
    h, model, rec = sd1
    fields = dict(prompt="a cat", negative_prompt="glasses", steps=20, sampler_name="Euler", seed=4, batch_size=2)
    by_steps = run(h, rec, [True, 3, True, 0.3, 4, 7], **fields)
    by_share = run(h, rec, [True, 15, True, 0.3, 20, 35, "%"], **fields)
    assert_same_run(by_steps, by_share)
    info = by_share[0].infotexts[0]
    assert "Negative delay: auto" in info and "Negative delay auto: sensitivity 0.3 steps 20%-35% fallback 15%" in info
    steps_line = re.search(r"Negative delay steps: ([\d ]+)", info).group(1)
    assert steps_line == re.search(r"Negative delay steps: ([\d ]+)", by_steps[0].infotexts[0]).group(1)


def test_the_default_window_as_shares_means_the_same_at_20_steps(sd1):
    """The shipped window (steps 4-7 of 20) is 20-35 %: at 20 steps both resolve to steps 4 and 7."""
    from lib_negative_delay.settings import DelaySettings

    assert Delay(20, True).steps(20) == DelaySettings.auto_min and Delay(35, True).steps(20) == DelaySettings.auto_max


# --- infotext, log, paste, Send to ----------------------------------------------------------------------------


def test_infotext_and_log_line_name_the_share_and_its_step(sd1, ext_log):
    h, model, rec = sd1
    res, _ = run(h, rec, [True, "20%"], prompt="a cat", negative_prompt="glasses", steps=30)
    assert re.search(r"(^|, )Negative delay: 20%(,|$)", res.infotexts[0].splitlines()[-1])
    assert any("negative prompt from 20 % — step 6 of 30" in m for m in ext_log.messages)
    res, _ = run(h, rec, [True, 4], prompt="a cat", negative_prompt="glasses", steps=30)
    assert re.search(r"(^|, )Negative delay: 4(,|$)", res.infotexts[0].splitlines()[-1])
    assert any("negative prompt from step 4 of 30" in m for m in ext_log.messages)


def test_a_share_of_100_percent_is_never_applied(sd1, ext_log):
    h, model, rec = sd1
    fields = dict(prompt="a cat", negative_prompt="glasses", steps=6, seed=1)
    assert_same_run(run(h, rec, [True, "100%"], **fields), run(h, rec, [True, 6], **fields))
    assert any("delay 100% (step 6) is not below the 6 sampling steps" in m for m in ext_log.at(logging.WARNING))


@pytest.mark.parametrize("tab", ["txt2img", "img2img"])
def test_paste_restores_percent_mode(sd1, tab):
    h, model, rec = sd1
    res, _ = run(h, rec, [True, 25, False, 0.3, 20, 35, "%"], prompt="a cat", negative_prompt="glasses", steps=8)
    enabled, delay, auto, *_, unit, _analysis = h.pasted_script_args(res.infotexts[0], TITLE, tab)
    assert (enabled, delay, auto, unit) == (True, 25, False, "%")


def test_paste_of_auto_shares_restores_the_window_in_percent(sd1):
    h, *_ = sd1
    text = (
        "a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Seed: 1, Negative delay: auto, "
        "Negative delay auto: sensitivity 0.4 steps 20%-35% fallback 12.5%"
    )
    assert h.pasted_script_args(text, TITLE) == [True, 12.5, True, 0.4, 20, 35, "%", False]


def test_paste_converts_a_window_bound_in_the_other_unit_with_the_infotexts_steps(sd1):
    h, *_ = sd1
    text = (
        "a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Seed: 1, Negative delay: auto, "
        "Negative delay auto: sensitivity 0.4 steps 2-30% fallback 15%"
    )  # only an API call or X/Y/Z mixes units
    assert h.pasted_script_args(text, TITLE) == [True, 15, True, 0.4, 10, 30, "%", False]
    text = text.replace("fallback 15%", "fallback 3")
    assert h.pasted_script_args(text, TITLE) == [True, 3, True, 0.4, 2, 6, "steps", False]


@pytest.mark.parametrize(
    "written,expected",
    [
        ("Negative delay: 4", [True, 4, False, "steps"]),
        ("Negative delay: 20%", [True, 20, False, "%"]),
        ("Negative delay: 150%", [True, 100, False, "%"]),
        ("Negative delay: soon%", [False, 3, False, "steps"]),
    ],
)
def test_pasted_delay_and_unit(sd1, written, expected):
    h, *_ = sd1
    text = f"a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, {written}, Seed: 1"
    args = h.pasted_script_args(text, TITLE)
    assert args[:3] + args[6:7] == expected


def test_old_auto_infotext_pastes_as_before(sd1):
    h, *_ = sd1
    text = (
        "a cat\nNegative prompt: glasses\nSteps: 6, Sampler: Euler, Seed: 3, Negative delay: auto, "
        "Negative delay auto: sensitivity 0.7 steps 1-4 fallback 2"
    )
    assert h.pasted_script_args(text, TITLE) == [True, 2, True, 0.7, 1, 4, "steps", False]


def test_api_infotext_keeps_a_fractional_share(sd1):
    h, model, rec = sd1
    text = "a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Seed: 3, Negative delay: 12.5%"
    out = h.api().text2imgapi({"infotext": text})
    assert re.search(r"Negative delay: 12.5%(,|$)", out["info"])


# --- API and X/Y/Z --------------------------------------------------------------------------------------------


def test_api_old_calls_mean_steps_and_shares_need_no_ambiguity(sd1):
    h, model, rec = sd1
    api = h.api()
    base = {"prompt": "a cat", "negative_prompt": "glasses", "steps": 10}
    infos = {
        name: api.text2imgapi({**base, "alwayson_scripts": {TITLE: {"args": args}}})["info"]
        for name, args in {
            "old": [True, 4],
            "text": [True, "40%"],
            "unit": [True, 40, False, 0.3, 20, 35, "%"],
            "steps_unit": [True, 4, False, 0.3, 4, 7, "steps"],
        }.items()
    }
    assert "Negative delay: 4," in infos["old"] and "Negative delay: 4," in infos["steps_unit"]
    assert "Negative delay: 40%" in infos["text"] and "Negative delay: 40%" in infos["unit"]


def test_script_info_lists_the_unit_last(sd1):
    h, *_ = sd1
    info = next(i for i in h.api().get_script_info() if i.name == TITLE.lower())
    labels = [a.label for a in info.args]
    assert labels[-2:] == ["Unit", "Show when the negative prompt acts"] and info.args[-2].value == "steps"


def test_xyz_percent_axis(sd1):
    h, model, rec = sd1
    result = h.run_xyz(
        "[Negative Delay] Delay (% of steps)", "10%, 20 %, 30", prompt="a cat", negative_prompt="glasses", steps=10
    )
    shares = [re.search(r"Negative delay: ([\d.]+%)", c.processed.infotexts[0]).group(1) for c in result.cells]
    assert shares == ["10%", "20%", "30%"]


def test_xyz_percent_axis_over_steps_resolves_per_cell(sd1):
    h, model, rec = sd1
    from conftest import encode_empty
    from test_denoiser_swap import is_empty

    empty = encode_empty(model, 64, 64)
    rec.clear()
    h.run_xyz(
        "Steps", "10, 20, 30", "[Negative Delay] Delay (% of steps)", "20%", prompt="a cat", negative_prompt="glasses"
    )
    per_cell, count = [], 0
    for e in rec.evaluations:
        if e.index == 0 and count:
            per_cell.append(count)
            count = 0
        count += is_empty(e.uncond, empty)
    per_cell.append(count)
    assert per_cell == [2, 4, 6]


def test_xyz_steps_axis_means_steps_even_with_the_panel_in_percent(sd1):
    h, *_ = sd1
    result = h.run_xyz(
        "[Negative Delay] Delay",
        "2",
        prompt="a cat",
        negative_prompt="glasses",
        steps=10,
        alwayson_scripts={TITLE: {"args": [True, 50, False, 0.3, 20, 35, "%"]}},
    )
    assert "Negative delay: 2," in result.cells[0].processed.infotexts[0]


@pytest.mark.parametrize("text", ["101%", "-5", "soon"])
def test_xyz_percent_axis_rejects_bad_values_before_any_image(sd1, text):
    h, *_ = sd1
    with pytest.raises(ValueError, match="not a share of the sampling steps"):
        h.run_xyz("[Negative Delay] Delay (% of steps)", text, prompt="a cat", negative_prompt="glasses", steps=5)


# --- panel ----------------------------------------------------------------------------------------------------


def test_unit_choice_sits_beside_the_delay_and_relabels_the_sliders(sd1):
    import gradio as gr

    from lib_negative_delay.webui import ui

    h, *_ = sd1
    enabled, delay, *_, unit, _analysis = h.components(TITLE, "txt2img")
    assert unit.parent is delay.parent  # one row (gradio wraps a row's form fields in one Form)
    assert ui.unit_update("%") == tuple(
        gr.update(label=x) for x in ("Delay (% of steps)", "Earliest (% of steps)", "Latest (% of steps)")
    )
    assert ui.unit_update("steps")[0] == gr.update(label="Delay (sampling steps)")
