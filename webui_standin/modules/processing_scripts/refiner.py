"""Stand-in for modules/processing_scripts/refiner.py: the built-in always-on 'Refiner' script (UI only; the
stand-in has no refiner checkpoints). It occupies script-argument slots before extension scripts, like in the WebUI."""

from __future__ import annotations

import gradio as gr
from modules import scripts
from modules.infotext_utils import PasteField
from modules.ui_components import InputAccordion


class ScriptRefiner(scripts.ScriptBuiltinUI):
    """mirrors modules/processing_scripts/refiner.py ScriptRefiner."""

    section = "accordions"
    create_group = False

    def title(self) -> str:
        return "Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with InputAccordion(False, label="Refiner", elem_id=self.elem_id("enable")) as enable_refiner:
            with gr.Row():
                refiner_checkpoint = gr.Dropdown(
                    label="Checkpoint", elem_id=self.elem_id("checkpoint"), choices=["None"], value="None"
                )
                refiner_switch_at = gr.Slider(
                    value=0.8,
                    label="Switch at",
                    minimum=0.01,
                    maximum=1.0,
                    step=0.01,
                    elem_id=self.elem_id("switch_at"),
                )
        self.infotext_fields = [
            PasteField(enable_refiner, lambda d: "Refiner" in d),
            PasteField(refiner_checkpoint, lambda d: d.get("Refiner"), api="refiner_checkpoint"),
            PasteField(refiner_switch_at, "Refiner switch at", api="refiner_switch_at"),
        ]
        return enable_refiner, refiner_checkpoint, refiner_switch_at

    def setup(self, p, enable_refiner, refiner_checkpoint, refiner_switch_at):
        if not enable_refiner or refiner_checkpoint in (None, "", "None"):
            p.refiner_checkpoint = None
            p.refiner_switch_at = None
        else:
            p.refiner_checkpoint = refiner_checkpoint
            p.refiner_switch_at = refiner_switch_at
