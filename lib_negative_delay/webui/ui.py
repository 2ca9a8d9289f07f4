"""The always-visible panel in txt2img and img2img.

Plain ``gr.Accordion`` + ``gr.Checkbox`` + ``gr.Slider``: works on gradio 3 (WebUI) and 4 (Forge) and keeps
"Enabled" independent of whether the panel is open (the WebUI's ``InputAccordion`` ties the two together).
The title's "from step N of S" suffix and the controls' hover tooltips are maintained by
``javascript/negative_prompt_delay.js``; ``style.css`` keeps the auto-detect controls on one row.
"""

from __future__ import annotations

from lib_negative_delay import MAX_DELAY, TITLE
from lib_negative_delay.settings import PERCENT_UNIT, STEPS_UNIT, UNITS, DelaySettings, parse_unit
from lib_negative_delay.webui import host, options

HELP = (
    "Until *Delay* the negative prompt is left empty. Try 2-5 of 20-30 steps, or 10-20 % in % mode.\n\n"
    "Auto-detect finds that step for each image. Hover a control for details."
)
"""Two short lines under the controls; the details are in the tooltips (JS) and the README."""


LABELS = {
    STEPS_UNIT: ("Delay (sampling steps)", "Earliest step", "Latest step"),
    PERCENT_UNIT: ("Delay (% of steps)", "Earliest (% of steps)", "Latest (% of steps)"),
}
"""The three sliders' labels per unit (the first pair names the components: ``ui-config.json`` keys use them)."""


def step_slider(value: float, label: str, elem_id: str) -> object:
    """A slider over 0..MAX_DELAY sampling steps (0..100 in % mode: ``javascript/`` caps what the page shows).

    Its value is a float so that the API's ``infotext`` field, which converts pasted values to the type of the
    component's default, keeps a fractional share such as 12.5 % (an int default would truncate it to 12)."""
    import gradio as gr

    return gr.Slider(minimum=0, maximum=MAX_DELAY, step=1, value=float(value), label=label, elem_id=elem_id)


def unit_update(unit: str) -> tuple:
    """``unit.change`` handler: the three sliders' labels follow the unit; their values are left as they are
    (a paste sets unit and values together; the page converts values only when the user clicks the unit)."""
    import gradio as gr

    labels = LABELS[parse_unit(unit, "delay unit")]
    return tuple(gr.update(label=label) for label in labels)


def auto_row_update(auto: bool) -> dict:
    """``auto.change`` handler: the sensitivity/earliest/latest row is shown only while auto-detect is ticked.

    gradio fires ``change`` for programmatic value changes too (a paste, "Send to"), so the row follows them."""
    import gradio as gr

    return gr.update(visible=bool(auto))


ANALYSIS_LABEL = "Show when the negative prompt acts"
ANALYSIS_INFO = (
    "Adds an analysis sheet per image after the images: one extra model evaluation per image and step. "
    "The images stay the same."
)
ANALYSIS_ARG = 7  # its place in the script's arguments


def build(is_img2img: bool) -> list:
    """Build the panel; returns the components in API order:
    ``[enabled, delay, auto, sensitivity, auto_min, auto_max, unit, analysis]``."""
    import gradio as gr

    tab = "img2img" if is_img2img else "txt2img"
    with gr.Accordion(TITLE, open=options.panel_open(), elem_id=f"negative_delay_{tab}"):
        with gr.Row():
            enabled = gr.Checkbox(label="Enabled", value=False, elem_id=f"negative_delay_{tab}_enabled")
            delay = step_slider(options.default_delay(), LABELS[STEPS_UNIT][0], f"negative_delay_{tab}_delay")
            unit = gr.Radio(
                choices=list(UNITS),
                value=STEPS_UNIT,
                label="Unit",
                elem_id=f"negative_delay_{tab}_unit",
                elem_classes=["negative-delay-unit"],
            )
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
            auto_min = step_slider(DelaySettings.auto_min, LABELS[STEPS_UNIT][1], f"negative_delay_{tab}_auto_min")
            auto_max = step_slider(DelaySettings.auto_max, LABELS[STEPS_UNIT][2], f"negative_delay_{tab}_auto_max")
        analysis = gr.Checkbox(
            label=ANALYSIS_LABEL, value=False, elem_id=f"negative_delay_{tab}_analysis", info=ANALYSIS_INFO
        )
        gr.Markdown(HELP, elem_classes=["negative-delay-help"])
    auto.change(fn=auto_row_update, inputs=[auto], outputs=[auto_row], show_progress="hidden", queue=False)
    unit.change(fn=unit_update, inputs=[unit], outputs=[delay, auto_min, auto_max], show_progress="hidden", queue=False)
    # unit and analysis last: API calls written before they existed ([enabled, delay, ...]) keep their meaning
    return [enabled, delay, auto, sensitivity, auto_min, auto_max, unit, analysis]
