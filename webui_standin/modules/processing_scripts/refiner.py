"""Stand-in for modules/processing_scripts/refiner.py: the built-in always-on 'Refiner' script (UI only; the
stand-in has no refiner checkpoints). It occupies script-argument slots before extension scripts, like in the WebUI."""

from __future__ import annotations

import gradio as gr
from modules import scripts
from modules.infotext_utils import PasteField
from modules.ui_components import InputAccordion


class ScriptRefiner(scripts.ScriptBuiltinUI):
    """Models modules/processing_scripts/refiner.py ScriptRefiner: an always-on section in the accordions with an
    enable toggle, a checkpoint dropdown and the "Switch at" fraction (args in that order).  Pasting enables it when
    the infotext has a "Refiner" entry.  setup() sets p.refiner_checkpoint / p.refiner_switch_at, both None unless
    it is enabled with a checkpoint chosen."""

    section = "accordions"
    create_group = False

    def title(self) -> str:
        return "Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with InputAccordion(False, label="Refiner", elem_id=self.elem_id("enable")) as enable, gr.Row():
            checkpoint = gr.Dropdown(
                label="Checkpoint", elem_id=self.elem_id("checkpoint"), choices=["None"], value="None"
            )
            switch_at = gr.Slider(
                label="Switch at", value=0.8, minimum=0.01, maximum=1.0, step=0.01, elem_id=self.elem_id("switch_at")
            )
        self.infotext_fields = [
            PasteField(enable, lambda params: "Refiner" in params),
            PasteField(checkpoint, lambda params: params.get("Refiner"), api="refiner_checkpoint"),
            PasteField(switch_at, "Refiner switch at", api="refiner_switch_at"),
        ]
        return enable, checkpoint, switch_at

    def setup(self, p, enable_refiner, refiner_checkpoint, refiner_switch_at):
        active = bool(enable_refiner) and refiner_checkpoint not in (None, "", "None")
        p.refiner_checkpoint, p.refiner_switch_at = (refiner_checkpoint, refiner_switch_at) if active else (None, None)
