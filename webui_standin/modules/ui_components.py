"""Stand-in for modules/ui_components.py (gradio 3.41.2)."""

from __future__ import annotations

import gradio as gr


class FormComponent:
    """mirrors ui_components.FormComponent."""

    def get_expected_parent(self):
        return gr.components.Form


gr.Dropdown.get_expected_parent = FormComponent.get_expected_parent  # as the WebUI does


class ToolButton(FormComponent, gr.Button):
    """mirrors ui_components.ToolButton: a small button with a single emoji as text."""

    def __init__(self, *args, **kwargs) -> None:
        classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *classes], **kwargs)

    def get_block_name(self) -> str:
        return "button"


class ResizeHandleRow(gr.Row):
    """mirrors ui_components.ResizeHandleRow."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.elem_classes.append("resize-handle-row")

    def get_block_name(self) -> str:
        return "row"


class FormRow(FormComponent, gr.Row):
    """mirrors ui_components.FormRow."""

    def get_block_name(self) -> str:
        return "row"


class FormColumn(FormComponent, gr.Column):
    """mirrors ui_components.FormColumn."""

    def get_block_name(self) -> str:
        return "column"


class FormGroup(FormComponent, gr.Group):
    """mirrors ui_components.FormGroup."""

    def get_block_name(self) -> str:
        return "group"


class FormHTML(FormComponent, gr.HTML):
    """mirrors ui_components.FormHTML."""

    def get_block_name(self) -> str:
        return "html"


class FormColorPicker(FormComponent, gr.ColorPicker):
    """mirrors ui_components.FormColorPicker."""

    def get_block_name(self) -> str:
        return "colorpicker"


class DropdownMulti(FormComponent, gr.Dropdown):
    """mirrors ui_components.DropdownMulti."""

    def __init__(self, **kwargs) -> None:
        super().__init__(multiselect=True, **kwargs)

    def get_block_name(self) -> str:
        return "dropdown"


class DropdownEditable(FormComponent, gr.Dropdown):
    """mirrors ui_components.DropdownEditable."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_custom_value=True, **kwargs)

    def get_block_name(self) -> str:
        return "dropdown"


JS_KWARG = "_js" if int(gr.__version__.split(".")[0]) < 4 else "js"


class InputAccordion(gr.Checkbox):
    """mirrors ui_components.InputAccordion: a hidden gr.Checkbox (its value is the bool, and it is what the script
    returns from ui()) that also renders a gr.Accordion kept in sync with it; use as
    ``with InputAccordion(False, label="...") as acc:`` - the children go into the accordion."""

    global_index = 0

    def __init__(self, value: bool, **kwargs) -> None:
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordion.global_index}"
            InputAccordion.global_index += 1

        kwargs_checkbox = {**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False}
        super().__init__(value, **kwargs_checkbox)

        # gradio 4 hosts (Forge, Neo) take ``js=`` where gradio 3 takes ``_js=`` (Forge's shim maps the old name)
        script = 'function(checked){ inputAccordionChecked("' + self.accordion_id + '", checked); }'
        self.change(fn=None, inputs=[self], **{JS_KWARG: script})

        kwargs_accordion = {
            **kwargs,
            "elem_id": self.accordion_id,
            "label": kwargs.get("label", "Accordion"),
            "elem_classes": ["input-accordion"],
            "open": value,
        }
        self.accordion = gr.Accordion(**kwargs_accordion)

    def extra(self):
        """mirrors InputAccordion.extra: a column shown in the accordion's header."""
        return gr.Column(elem_id=self.accordion_id + "-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self) -> str:
        return "checkbox"
