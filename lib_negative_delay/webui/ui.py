"""The always-visible panel in txt2img and img2img."""

from __future__ import annotations

from lib_negative_delay import MAX_DELAY, TITLE
from lib_negative_delay.webui import options

HELP = (
    "Until the chosen step the sampler uses the empty prompt as its negative; from then on your negative prompt. "
    "Removes unwanted things without reshaping the picture. 2-5 steps of 20-30 is a good start."
)


def build(is_img2img: bool) -> list:
    """Build the panel; returns the components in API order: ``[enabled, delay]``."""
    import gradio as gr
    from modules.ui_components import InputAccordion

    tab = "img2img" if is_img2img else "txt2img"
    with InputAccordion(options.panel_open(), label=TITLE, elem_id=f"negative_delay_{tab}") as enabled:
        with enabled.extra():
            gr.HTML(value="", elem_id=f"negative_delay_{tab}_summary", elem_classes=["negative-delay-summary"])
        delay = gr.Slider(
            minimum=0,
            maximum=MAX_DELAY,
            step=1,
            value=options.default_delay(),
            label="Delay (sampling steps)",
            elem_id=f"negative_delay_{tab}_delay",
        )
        extra = (
            " In img2img the delay is a noise level: a low denoising strength applies it from the first step."
            if is_img2img
            else ""
        )
        gr.Markdown(HELP + extra, elem_classes=["negative-delay-help"])
    return [enabled, delay]
