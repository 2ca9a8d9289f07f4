"""Negative Prompt Delay — WebUI entry point. Only wiring: the behaviour lives in ``lib_negative_delay``."""

from modules import scripts

from lib_negative_delay import TITLE
from lib_negative_delay.webui import generation, infotext, register_callbacks, ui

register_callbacks()


class NegativePromptDelayScript(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> object:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        components = ui.build(is_img2img)
        self.infotext_fields = infotext.infotext_fields(components)
        self.paste_field_names = infotext.paste_field_names()
        return components

    def process(self, p, enabled=False, delay=0, *more) -> None:  # noqa: ANN001
        # more: auto, sensitivity, earliest, latest, unit, analysis (API calls may stop early)
        generation.start_generation(p, enabled, delay, *more[:5], analysis=more[5] if len(more) > 5 else False)

    def process_before_every_sampling(self, p, *args, **kwargs) -> None:  # noqa: ANN001
        generation.before_sampling(p)

    def postprocess(self, p, processed, *args) -> None:  # noqa: ANN001
        generation.finish_generation(p, processed)
