"""The always-visible panel in txt2img and img2img.

Plain ``gr.Accordion`` + ``gr.Checkbox`` + ``gr.Slider``: works on gradio 3 (WebUI) and 4 (Forge) and keeps
"Enabled" independent of whether the panel is open (the WebUI's ``InputAccordion`` ties the two together).
The title's "from step N of S" suffix and the controls' hover tooltips are maintained by
``javascript/negative_prompt_delay.js``; ``style.css`` keeps the auto-detect controls on one row.
"""

from __future__ import annotations

from lib_negative_delay import MAX_DELAY, TITLE
from lib_negative_delay.settings import DelaySettings
from lib_negative_delay.webui import host, options

HELP = (
    "Until step *Delay* the negative prompt is left empty. Try 2-5 of 20-30 steps.\n\n"
    "Auto-detect finds that step for each image. Hover a control for details."
)
"""Two short lines under the controls; the details are in the tooltips (JS) and the README."""


def step_slider(value: int, label: str, elem_id: str) -> object:
    """A slider over sampling steps 0..MAX_DELAY."""
    import gradio as gr

    return gr.Slider(minimum=0, maximum=MAX_DELAY, step=1, value=value, label=label, elem_id=elem_id)


def auto_row_update(auto: bool) -> dict:
    """``auto.change`` handler: the sensitivity/earliest/latest row is shown only while auto-detect is ticked.

    gradio fires ``change`` for programmatic value changes too (a paste, "Send to"), so the row follows them."""
    import gradio as gr

    return gr.update(visible=bool(auto))


def build(is_img2img: bool) -> list:
    """Build the panel; returns the components in API order:
    ``[enabled, delay, auto, sensitivity, auto_min, auto_max]``."""
    import gradio as gr

    tab = "img2img" if is_img2img else "txt2img"
    with gr.Accordion(TITLE, open=options.panel_open(), elem_id=f"negative_delay_{tab}"):
        with gr.Row():
            enabled = gr.Checkbox(label="Enabled", value=False, elem_id=f"negative_delay_{tab}_enabled")
            delay = step_slider(options.default_delay(), "Delay (sampling steps)", f"negative_delay_{tab}_delay")
        note = host.panel_note(host.detect())
        auto = gr.Checkbox(
            label="Auto-detect critical step",
            value=False,
            elem_id=f"negative_delay_{tab}_auto",
            **({"info": note} if note else {}),
        )
        # The WebUI applies ui-config.json defaults after the whole UI is built, and no change event fires for them:
        # a saved "ticked" default would show ticked over a hidden row. So this checkbox always starts unticked.
        auto.do_not_save_to_config = True
        with gr.Row(
            visible=False, elem_id=f"negative_delay_{tab}_auto_row", elem_classes=["negative-delay-auto-row"]
        ) as auto_row:
            sensitivity = gr.Slider(
                minimum=0.0,
                maximum=1.0,
                step=0.05,
                value=DelaySettings.sensitivity,
                label="Sensitivity",
                elem_id=f"negative_delay_{tab}_sensitivity",
            )
            auto_min = step_slider(DelaySettings.auto_min, "Earliest step", f"negative_delay_{tab}_auto_min")
            auto_max = step_slider(DelaySettings.auto_max, "Latest step", f"negative_delay_{tab}_auto_max")
        gr.Markdown(HELP, elem_classes=["negative-delay-help"])
    auto.change(fn=auto_row_update, inputs=[auto], outputs=[auto_row], show_progress="hidden", queue=False)
    return [enabled, delay, auto, sensitivity, auto_min, auto_max]
