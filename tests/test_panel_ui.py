"""The panel as built with real gradio: component order, auto-detect row visibility, help text, tooltips, CSS."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, TITLE

SUFFIXES = ["_enabled", "_delay", "_auto", "_sensitivity", "_auto_min", "_auto_max", "_unit", "_analysis"]


def _ancestor(component, kind):
    block = component.parent
    while not isinstance(block, kind):
        block = block.parent
    return block


def _descendants(block):
    for child in getattr(block, "children", []):
        yield child
        yield from _descendants(child)


def _auto_row(h, tab):
    import gradio as gr

    auto = h.components(TITLE, tab)[2]
    row = _ancestor(h.components(TITLE, tab)[3], gr.Row)
    assert row.elem_id == f"negative_delay_{tab}_auto_row"
    return auto, row


@pytest.mark.parametrize("tab", ["txt2img", "img2img"])
def test_components_keep_the_api_order(sd1, tab):
    h, *_ = sd1
    ids = [c.elem_id for c in h.components(TITLE, tab)]
    assert ids == [f"negative_delay_{tab}{s}" for s in SUFFIXES]
    labels = [c.label for c in h.components(TITLE, tab)]
    assert labels[:3] == ["Enabled", "Delay (sampling steps)", "Auto-detect critical step"]


def change_handlers(blocks, component) -> list[tuple]:
    """(input ids, output ids, js, fn) of each ``change`` handler of ``component`` (gradio 3 and 4 layouts)."""
    if isinstance(blocks.fns, dict):  # gradio 4: BlockFunction objects with their targets
        return [
            ([c._id for c in f.inputs], [c._id for c in f.outputs], f.js, f)
            for f in blocks.fns.values()
            if (component._id, "change") in [tuple(t) for t in f.targets]
        ]
    return [
        (dep["inputs"], dep["outputs"], dep["js"], fn)
        for dep, fn in zip(blocks.dependencies, blocks.fns, strict=True)
        if dep["trigger"] == "change" and component._id in dep["targets"]
    ]


@pytest.mark.parametrize("tab", ["txt2img", "img2img"])
def test_auto_controls_share_one_row_shown_only_while_auto_is_ticked(sd1, tab):
    h, *_ = sd1
    auto, row = _auto_row(h, tab)
    _, _, _, sensitivity, auto_min, auto_max, _, _ = h.components(TITLE, tab)
    import gradio as gr

    in_row = [c for c in _descendants(row) if isinstance(c, gr.components.Component)]
    assert in_row == [sensitivity, auto_min, auto_max] and "negative-delay-auto-row" in row.elem_classes
    assert auto.value is False and row.visible is False  # starts hidden, like the unticked checkbox
    assert getattr(auto, "do_not_save_to_config", False)  # a saved ui-config default could not show the row

    blocks = getattr(h.current(), tab).blocks
    wired = change_handlers(blocks, auto)
    assert len(wired) == 1
    inputs, outputs, js, fn = wired[0]
    assert inputs == [auto._id] and outputs == [row._id] and js is None
    assert fn.fn(True) == gr.update(visible=True) and fn.fn(False) == gr.update(visible=False)


def test_gradio_fires_change_for_programmatic_values():
    """Why a paste or "Send to" that ticks auto also shows the row: in gradio 3.41 a checkbox dispatches `change`
    whenever its value changes, whoever changed it (frontend source shipped in the package's source maps)."""
    import json

    import gradio as gr

    assets = ROOT / ".venv"  # only checkable where the venv's gradio ships its frontend source maps
    maps = list((ROOT / ".venv").glob("lib/python*/site-packages/gradio/templates/frontend/assets/Checkbox-*.js.map"))
    if gr.__version__ != "3.41.2" or not maps:
        pytest.skip(f"no gradio 3.41.2 frontend under {assets}")
    sources = json.loads(maps[0].read_text())["sourcesContent"]
    checkbox = next(s for s in sources if s and "bind:checked" in s)
    assert re.search(r"\$: value, handle_change\(\);", checkbox) and 'dispatch("change", value)' in checkbox


@pytest.mark.parametrize("is_img2img", [False, True])
def test_help_text_is_two_short_lines(sd1, is_img2img):
    import gradio as gr

    from lib_negative_delay.webui import ui

    with gr.Blocks():
        components = ui.build(is_img2img)
    helps = [c for c in _descendants(_ancestor(components[0], gr.Accordion)) if isinstance(c, gr.Markdown)]
    assert len(helps) == 1
    text = helps[0].value
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) <= 2 and len(text) <= 200 and all(len(line) <= 110 for line in lines)


def test_tooltips_and_row_css_target_the_panel():
    js = (ROOT / "javascript" / "negative_prompt_delay.js").read_text()
    tips = re.search(r"var TIPS = \{(.*?)\n    \};", js, re.S).group(1)
    assert set(re.findall(r"^\s+(_\w+):", tips, re.M)) == set(SUFFIXES)
    css = (ROOT / "style.css").read_text()
    rule = re.search(r"\.negative-delay-auto-row,\s*\.negative-delay-auto-row > \.form \{([^}]*)\}", css).group(1)
    assert "flex-wrap: nowrap" in rule
    assert re.search(r"\.negative-delay-auto-row > \.form \{", css)  # gradio wraps the sliders in a .form
    assert re.search(r"\.negative-delay-auto-row \.block \{[^}]*min-width:", css)


def test_title_summary_follows_programmatic_changes():
    """Paste and "Send to" change values without DOM events: the script polls besides listening to the user."""
    js = (ROOT / "javascript" / "negative_prompt_delay.js").read_text()
    assert "setInterval(" in js and 'addEventListener("input"' in js
