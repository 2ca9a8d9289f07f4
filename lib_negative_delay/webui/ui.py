"""The always-visible panel in txt2img and img2img.

Plain ``gr.Accordion`` + ``gr.Checkbox`` + ``gr.Slider``: works on gradio 3 (WebUI) and 4 (Forge) and keeps
"Enabled" independent of whether the panel is open (the WebUI's ``InputAccordion`` ties the two together).
The title's "on, from step N of S" suffix is maintained by ``javascript/negative_prompt_delay.js``.
"""

from __future__ import annotations

from lib_negative_delay import MAX_DELAY, TITLE
from lib_negative_delay.settings import DelaySettings
from lib_negative_delay.webui import options

HELP = (
    "Until the chosen step the sampler uses the empty prompt as its negative; from then on your negative prompt. "
    "Removes unwanted things without reshaping the picture. 2-5 steps of 20-30 is a good start."
)
AUTO_HELP = (
    " Auto-detect switches each image once the prompt starts to draw what the negative prompt names (measured"
    " between the earliest and latest step, one extra model evaluation per undecided image and step; undecided"
    " images switch at the latest step); the Delay is the fallback if detection cannot run."
)
IMG2IMG_HELP = " In img2img and hires fix the delay marks a noise level: a low denoising strength applies it at once."


def step_slider(value: int, label: str, elem_id: str) -> object:
    """A slider over sampling steps 0..MAX_DELAY."""
    import gradio as gr

    return gr.Slider(minimum=0, maximum=MAX_DELAY, step=1, value=value, label=label, elem_id=elem_id)


def build(is_img2img: bool) -> list:
    """Build the panel; returns the components in API order:
    ``[enabled, delay, auto, sensitivity, auto_min, auto_max]``."""
    import gradio as gr

    tab = "img2img" if is_img2img else "txt2img"
    with gr.Accordion(TITLE, open=options.panel_open(), elem_id=f"negative_delay_{tab}"):
        with gr.Row():
            enabled = gr.Checkbox(label="Enabled", value=False, elem_id=f"negative_delay_{tab}_enabled")
            delay = step_slider(options.default_delay(), "Delay (sampling steps)", f"negative_delay_{tab}_delay")
        with gr.Row():
            auto = gr.Checkbox(label="Auto-detect critical step", value=False, elem_id=f"negative_delay_{tab}_auto")
            sensitivity = gr.Slider(
                minimum=0.0,
                maximum=1.0,
                step=0.05,
                value=DelaySettings.sensitivity,
                label="Sensitivity (higher switches earlier)",
                elem_id=f"negative_delay_{tab}_sensitivity",
            )
            auto_min = step_slider(DelaySettings.auto_min, "Earliest step", f"negative_delay_{tab}_auto_min")
            auto_max = step_slider(DelaySettings.auto_max, "Latest step", f"negative_delay_{tab}_auto_max")
        gr.Markdown(HELP + (IMG2IMG_HELP if is_img2img else "") + AUTO_HELP, elem_classes=["negative-delay-help"])
    return [enabled, delay, auto, sensitivity, auto_min, auto_max]
