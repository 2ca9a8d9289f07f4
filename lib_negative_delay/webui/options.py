"""Entries on the WebUI's Settings page."""

from __future__ import annotations

from lib_negative_delay import MAX_DELAY, TITLE, VERSION

SECTION = ("negative_prompt_delay", f"{TITLE} {VERSION}")
DEFAULT_DELAY_KEY = "negative_delay_default_delay"
OPEN_KEY = "negative_delay_open_panel"
SAVE_SHEETS_KEY = "negative_delay_save_sheets"
DEFAULT_DELAY = 3  # about 10-15 % of a 20-30 step schedule: the paper's critical step


def on_ui_settings() -> None:
    """``script_callbacks.on_ui_settings`` hook."""
    import gradio as gr
    from modules import shared

    shared.opts.add_option(
        DEFAULT_DELAY_KEY,
        shared.OptionInfo(
            DEFAULT_DELAY,
            "Default delay (sampling steps before the negative prompt applies)",
            gr.Slider,
            {"minimum": 0, "maximum": MAX_DELAY, "step": 1},
            section=SECTION,
        ),
    )
    shared.opts.add_option(
        OPEN_KEY,
        shared.OptionInfo(False, "Start with the Negative Prompt Delay panel open", gr.Checkbox, section=SECTION),
    )
    shared.opts.add_option(
        SAVE_SHEETS_KEY,
        shared.OptionInfo(
            False,
            "Save analysis sheets with the grids (when the WebUI saves grids)",
            gr.Checkbox,
            section=SECTION,
        ),
    )


def default_delay() -> int:
    """The default delay from Settings, falling back to ``DEFAULT_DELAY`` for unset or bad values."""
    from modules import shared

    from lib_negative_delay.settings import parse_delay

    value = getattr(shared.opts, DEFAULT_DELAY_KEY, DEFAULT_DELAY)
    parsed = parse_delay(value, "Settings")
    return DEFAULT_DELAY if parsed is None else parsed


def panel_open() -> bool:
    from modules import shared

    return bool(getattr(shared.opts, OPEN_KEY, False))


def save_sheets() -> bool:
    from modules import shared

    return bool(getattr(shared.opts, SAVE_SHEETS_KEY, False))
