"""The extension as a WebUI user meets it: loading, UI, infotext/paste, X/Y/Z plot, API, settings, bad input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TITLE, encode_empty
from test_denoiser_swap import is_empty

from lib_negative_delay import VERSION

# --- loading and UI -------------------------------------------------------------------------------------------


def test_script_loads_like_the_webui_and_builds_real_gradio(sd1):
    import gradio as gr

    h, *_ = sd1
    assert gr.__version__ == "3.41.2"
    for tab in ("txt2img", "img2img"):
        enabled, delay, auto, sensitivity, auto_min, auto_max, unit, analysis = h.components(TITLE, tab)
        assert isinstance(enabled, gr.Checkbox) and enabled.value is False
        assert isinstance(delay, gr.Slider) and delay.value == 3 and delay.label.startswith("Delay")
        assert auto.value is False and sensitivity.value == 0.3 and (auto_min.value, auto_max.value) == (4, 7)
        assert (
            isinstance(unit, gr.Radio)
            and unit.value == "steps"
            and unit.choices in (["steps", "%"], [("steps", "steps"), ("%", "%")])
        )
        assert isinstance(analysis, gr.Checkbox) and analysis.value is False
    script = h.script(TITLE)
    assert script.title() == TITLE and script.args_to - script.args_from == 8


def test_callback_registered_once_per_load(sd1):
    h, model, _ = sd1
    from modules import script_callbacks

    from lib_negative_delay.webui import generation

    def ours():
        return [
            c
            for c in script_callbacks.callback_map["callbacks_cfg_denoiser"]
            if c.callback is generation.on_cfg_denoiser
        ]

    assert len(ours()) == 1
    h.start(str(ROOT), model)  # a UI reload: callbacks cleared, scripts imported again
    assert len(ours()) == 1


def test_javascript_targets_the_ui_elem_ids():
    js = (ROOT / "javascript" / "negative_prompt_delay.js").read_text()
    ui = (ROOT / "lib_negative_delay" / "webui" / "ui.py").read_text()
    suffixes = set(re.findall(r'f"negative_delay_\{tab\}(\w*)"', ui))
    assert {"", "_delay", "_enabled"} <= suffixes
    for suffix in ("", "_delay", "_enabled"):
        assert (f'"#negative_delay_" + tab + "{suffix}' if suffix else '"#negative_delay_" + tab)') in js
    assert "_js=" not in ui and "js=" not in ui  # gradio 3/4 neutral: no JS event arguments from Python


def test_open_panel_setting_does_not_enable(sd1):
    h, model, _ = sd1
    from modules import shared

    shared.opts.negative_delay_open_panel = True
    import gradio as gr

    from lib_negative_delay.webui import ui

    with gr.Blocks():
        enabled, *_ = ui.build(False)
    assert enabled.value is False
    panel = enabled.parent
    while not isinstance(panel, gr.Accordion):
        panel = panel.parent
    assert panel.open is True


# --- infotext -------------------------------------------------------------------------------------------------


def test_infotext_written_only_when_enabled(sd1):
    h, *_ = sd1
    off = h.txt2img(prompt="a cat", negative_prompt="glasses")
    on = h.txt2img(prompt="a cat", negative_prompt="glasses", alwayson_scripts={TITLE: {"args": [True, 4]}})
    assert "Negative delay" not in off.infotexts[0]
    assert re.search(r"(^|, )Negative delay: 4(,|$)", on.infotexts[0].splitlines()[-1])


@pytest.mark.parametrize("tab", ["txt2img", "img2img"])
def test_paste_round_trip(sd1, tab):
    h, *_ = sd1
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", alwayson_scripts={TITLE: {"args": [True, 4]}})
    assert h.pasted_script_args(res.infotexts[0], TITLE, tab)[:3] == [True, 4, False]
    plain = h.txt2img(prompt="a cat", negative_prompt="glasses")
    enabled, delay, *_ = h.pasted_script_args(plain.infotexts[0], TITLE, tab)
    assert enabled is False and delay == 3  # images made without it turn it off, delay untouched


@pytest.mark.parametrize(
    "value,expected,warned",
    [("abc", [False, 3], True), ("-3", [True, 0], True), ("99999", [True, 150], True), ('"7"', [True, 7], False)],
)
def test_malformed_pasted_values(sd1, ext_log, value, expected, warned):
    h, *_ = sd1
    text = f"a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Negative delay: {value}, Seed: 1"
    assert h.pasted_script_args(text, TITLE)[:2] == expected
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == (1 if warned else 0)


def test_an_unreadable_auto_key_is_warned_once_and_leaves_the_auto_settings(sd1, ext_log):
    """A hand-edited auto key the extension cannot read (a negative fallback, NaN): one warning naming it, auto mode
    still on (``Negative delay: auto``), sensitivity and window left as the panel has them (None)."""
    h, *_ = sd1
    auto = "Negative delay auto: sensitivity nan steps 20%-1000% fallback -3"
    text = f"a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Negative delay: auto, {auto}, Seed: 1"
    enabled, delay, is_auto, sensitivity, low, high, _, _ = h.pasted_script_args(text, TITLE)
    assert enabled is True and is_auto is True
    assert (delay, sensitivity, low, high) == (3, 0.3, 4, 7)  # the panel's values, untouched
    warnings = ext_log.at(logging.WARNING)
    assert len(warnings) == 1 and "unreadable" in warnings[0] and "fallback -3" in warnings[0]


def test_a_reversed_auto_window_runs_and_is_written_as_its_start(sd1, ext_log):
    h, *_ = sd1
    res = h.txt2img(
        prompt="a cat", negative_prompt="glasses", alwayson_scripts={TITLE: {"args": [True, 3, True, 0.3, 7, 2]}}
    )
    assert "Negative delay auto: sensitivity 0.3 steps 7-7 fallback 3" in res.infotexts[0]
    assert any("auto window 7-2 ends before it starts; using 7-7" in m for m in ext_log.at(logging.WARNING))


# --- X/Y/Z plot -----------------------------------------------------------------------------------------------


def test_xyz_axes_registered_once(sd1):
    h, model, _ = sd1
    from modules import script_callbacks

    labels = [o.label for o in h.xyz().axis_options if o.label.startswith("[Negative Delay]")]
    assert labels == [
        "[Negative Delay] Delay",
        "[Negative Delay] Enabled",
        "[Negative Delay] Auto-detect",
        "[Negative Delay] Sensitivity",
        "[Negative Delay] Delay (% of steps)",  # last: X/Y/Z API calls name axes by index
    ]
    script_callbacks.before_ui_callback()  # the UI is rebuilt
    labels = [o.label for o in h.xyz().axis_options if o.label.startswith("[Negative Delay]")]
    assert len(labels) == 5


@pytest.mark.parametrize("text,expected", [("0-4 (+2)", [0, 2, 4]), ("1,3", [1, 3]), ("0-6 [3]", [0, 3, 6])])
def test_xyz_delay_axis_turns_the_extension_on(sd1, text, expected):
    h, *_ = sd1
    run = h.run_xyz("[Negative Delay] Delay", text, prompt="a cat", negative_prompt="glasses", steps=6)
    delays = [int(re.search(r"Negative delay: (\d+)", c.processed.infotexts[0]).group(1)) for c in run.cells]
    assert delays == expected


def test_xyz_enabled_axis_and_delay_on_y(sd1):
    h, model, rec = sd1
    run = h.run_xyz(
        "[Negative Delay] Enabled",
        "True, False",
        "[Negative Delay] Delay",
        "2",
        prompt="a cat",
        negative_prompt="glasses",
        steps=5,
    )
    by_x = {c.x: c.processed.infotexts[0] for c in run.cells}
    # the delay axis turns it on, the enabled axis is applied first (X before Y) — so both cells are on
    assert all("Negative delay: 2" in t for t in by_x.values())
    run = h.run_xyz(
        "[Negative Delay] Enabled",
        "True, False",
        prompt="a cat",
        negative_prompt="glasses",
        steps=5,
        alwayson_scripts={TITLE: {"args": [False, 2]}},
    )
    states = {c.x: "Negative delay: 2" in c.processed.infotexts[0] for c in run.cells}
    assert states == {"True": True, "False": False}


def test_xyz_rejects_negative_delays(sd1):
    h, *_ = sd1
    with pytest.raises(RuntimeError, match="not a step count"):
        h.run_xyz("[Negative Delay] Delay", "-2, 3", prompt="a cat", negative_prompt="glasses", steps=5)


def test_missing_xyz_script_is_survived(sd1, ext_log):
    h, *_ = sd1
    from modules import scripts

    from lib_negative_delay.webui import xyz

    scripts.scripts_data[:] = [d for d in scripts.scripts_data if not d.path.endswith("xyz_grid.py")]
    xyz.register_axes()
    assert any("X/Y/Z plot script not found" in m for m in ext_log.messages)


# --- API ------------------------------------------------------------------------------------------------------


def test_api_txt2img_and_img2img(sd1):
    h, model, rec = sd1
    api = h.api()
    out = api.text2imgapi(
        {
            "prompt": "a cat",
            "negative_prompt": "glasses",
            "steps": 5,
            "alwayson_scripts": {"negative prompt delay": {"args": [True, 2]}},
        }
    )
    assert "Negative delay: 2" in out["info"]
    assert sum(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in rec.evaluations) == 2
    rec.clear()
    out = api.img2imgapi(
        {
            "prompt": "a cat",
            "negative_prompt": "glasses",
            "steps": 10,
            "denoising_strength": 0.7,
            "init_images": [torch.rand(3, 64, 64)],
            "width": 64,
            "height": 64,
            "alwayson_scripts": {TITLE: {"args": [True, 3]}},
        }
    )
    assert "Negative delay: 3" in out["info"]
    # 0.7 of 10 steps runs the last 8 of the 10-step schedule (offset 2): step 3 of txt2img is pass step 1
    assert sum(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in rec.evaluations) == 1


def test_api_missing_args_keep_ui_defaults(sd1):
    h, *_ = sd1
    out = h.api().text2imgapi(
        {"prompt": "a cat", "negative_prompt": "glasses", "steps": 5, "alwayson_scripts": {TITLE: {"args": [True]}}}
    )
    assert "Negative delay: 3" in out["info"]


def test_api_infotext_field_restores_the_args(sd1):
    h, *_ = sd1
    text = "a cat\nNegative prompt: glasses\nSteps: 5, Sampler: Euler, Seed: 3, Negative delay: 2"
    out = h.api().text2imgapi({"infotext": text})
    assert "Negative delay: 2" in out["info"]


def test_api_garbage_args_do_not_break_generation(sd1, ext_log):
    h, *_ = sd1
    out = h.api().text2imgapi(
        {
            "prompt": "a cat",
            "negative_prompt": "glasses",
            "steps": 5,
            "alwayson_scripts": {TITLE: {"args": [True, "abc"]}},
        }
    )
    assert "Negative delay" not in out["info"]
    assert len(out["images"]) == 1 and any("abc" in m for m in ext_log.messages)


def test_script_info_lists_the_args(sd1):
    h, *_ = sd1
    infos = [i for i in h.api().get_script_info() if i.name == TITLE.lower()]
    assert {i.is_img2img for i in infos} == {False, True}
    labels = [a.label for a in infos[0].args]
    assert labels[0] == "Enabled" and labels[1].startswith("Delay")
    assert infos[0].args[1].minimum == 0 and infos[0].args[1].maximum >= 150


# --- settings page --------------------------------------------------------------------------------------------


def test_settings_page_options(sd1):
    h, model, _ = sd1
    from modules import shared

    assert shared.opts.data_labels["negative_delay_default_delay"].section[1] == f"{TITLE} {VERSION}"
    shared.opts.negative_delay_default_delay = 6
    shared.opts.negative_delay_open_panel = True
    h.start(str(ROOT), model)  # options are reset by start; set them again before the UI is built
    shared.opts.negative_delay_default_delay = 6
    from lib_negative_delay.webui import options

    assert options.default_delay() == 6 and options.panel_open() is False
    shared.opts.negative_delay_default_delay = "junk"
    assert options.default_delay() == options.DEFAULT_DELAY


# --- bad input and failures ----------------------------------------------------------------------------------


def test_empty_negative_prompt_is_a_logged_no_op(sd1, ext_log):
    h, model, rec = sd1
    res = h.txt2img(
        prompt="a cat", negative_prompt="", steps=5, n_iter=2, alwayson_scripts={TITLE: {"args": [True, 3]}}
    )
    assert "Negative delay: 3" in res.infotexts[0]
    assert ext_log.messages == ["the negative prompt is empty: nothing to delay"]


def test_unsupported_conditioning_degrades_once(sd1, ext_log, monkeypatch):
    h, model, rec = sd1
    from lib_negative_delay.webui import empty_cond

    empty_cond.clear()
    real = model.get_learned_conditioning
    monkeypatch.setattr(
        model, "get_learned_conditioning", lambda batch: torch.zeros(1, 77, 7) if list(batch) == [""] else real(batch)
    )
    kw = dict(prompt="a cat", negative_prompt="glasses", steps=5, batch_size=2)
    res = h.txt2img(**kw, alwayson_scripts={TITLE: {"args": [True, 3]}})
    monkeypatch.undo()
    empty_cond.clear()
    off = h.txt2img(**kw)
    assert all(torch.equal(a, b) for a, b in zip(res.images, off.images, strict=False))
    errors = ext_log.at(logging.ERROR)
    assert len(errors) == 1 and "unsupported" in errors[0]


def test_exception_in_callback_is_logged_once_and_generation_goes_on(sd1, ext_log, monkeypatch):
    h, model, rec = sd1
    from modules import errors

    from lib_negative_delay.webui import empty_cond

    def boom(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(empty_cond.fitted, "get", boom)
    res = h.txt2img(
        prompt="a cat",
        negative_prompt="glasses",
        steps=5,
        sampler_name="Heun",
        alwayson_scripts={TITLE: {"args": [True, 3]}},
    )
    assert len(res.images) == 1
    assert len(ext_log.at(logging.ERROR)) == 1 and "boom" in ext_log.at(logging.ERROR)[0]
    assert not [e for e in errors.recorded if "cfg_denoiser" in e]  # nothing escaped to the WebUI


def test_failed_generation_leaks_nothing(sd1, monkeypatch):
    h, model, rec = sd1
    real = model.apply_model
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(model, "apply_model", flaky)
    with pytest.raises(RuntimeError):
        h.txt2img(prompt="a cat", negative_prompt="glasses", steps=5, alwayson_scripts={TITLE: {"args": [True, 3]}})
    monkeypatch.undo()
    rec.clear()
    res = h.txt2img(prompt="a cat", negative_prompt="glasses", steps=5)
    assert "Negative delay" not in res.infotexts[0]
    assert not any(is_empty(e.uncond, encode_empty(model, 64, 64)) for e in rec.evaluations)


# --- caching --------------------------------------------------------------------------------------------------


def test_empty_prompt_encoded_once_per_pass_that_needs_it(sd1):
    h, model, rec = sd1
    from fake_models import FakeSD1Model

    kw = dict(prompt="a cat", negative_prompt="glasses", steps=5, alwayson_scripts={TITLE: {"args": [True, 2]}})
    model.reset_calls()
    for _ in range(3):
        h.txt2img(**kw)
    h.txt2img(**kw, width=96)
    h.txt2img(**kw, batch_size=2, n_iter=2)  # two batches: two passes
    assert sum(1 for batch in model.encode_calls if batch == [""]) == 6
    model.reset_calls()
    h.img2img([torch.rand(3, 64, 64)], **{**kw, "steps": 20}, denoising_strength=0.3)  # starts below the level
    assert not any(batch == [""] for batch in model.encode_calls)
    other = FakeSD1Model(seed=5)
    h.switch_model(other)
    rec.clear()
    h.txt2img(**kw)
    empty = encode_empty(other, 64, 64)
    assert sum(is_empty(e.uncond, empty) for e in rec.evaluations) == 2  # the new model's empty prompt


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash dev test" in readme and "bash dev test" in ci and "bash dev demo" in readme
    assert Path(ROOT / "install.py").read_text().count("pip") == 0
