"""Stand-in for modules/options.py (OptionInfo, options_section, Options)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modules import errors


@dataclass(eq=False)
class OptionInfo:
    """Models modules/options.py OptionInfo: one setting's default and how the settings page shows it (same
    constructor arguments, in the same order).  The chainable helpers append HTML to the text shown before
    (links) or after (notes) the setting and return the option."""

    default: Any = None
    label: str = ""
    component: Any = None
    component_args: Any = None
    onchange: Callable | None = None
    section: Any = None
    refresh: Callable | None = None
    comment_before: str = ""
    comment_after: str = ""
    infotext: str | None = None
    restrict_api: bool = False
    category_id: str | None = None
    do_not_save: bool = field(default=False, init=False)

    def _noted(self, where: str, markup: str) -> OptionInfo:
        setattr(self, where, getattr(self, where) + markup)
        return self

    def link(self, label: str, url: str) -> OptionInfo:
        """Models OptionInfo.link: a link that opens in a new tab, shown before the setting."""
        return self._noted("comment_before", f"[<a href='{url}' target='_blank'>{label}</a>]")

    def js(self, label: str, js_func: str) -> OptionInfo:
        """Models OptionInfo.js: a link that runs a JavaScript function."""
        return self._noted("comment_before", f"[<a onclick='{js_func}(); return false'>{label}</a>]")

    def info(self, info: str) -> OptionInfo:
        """Models OptionInfo.info: a note in parentheses after the setting."""
        return self._noted("comment_after", f"<span class='info'>({info})</span>")

    def html(self, html: str) -> OptionInfo:
        """Models OptionInfo.html: raw HTML after the setting."""
        return self._noted("comment_after", html)

    def needs_restart(self) -> OptionInfo:
        """Models OptionInfo.needs_restart."""
        return self._noted("comment_after", " <span class='info'>(requires restart)</span>")

    def needs_reload_ui(self) -> OptionInfo:
        """Models OptionInfo.needs_reload_ui."""
        return self._noted("comment_after", " <span class='info'>(requires Reload UI)</span>")


class OptionHTML(OptionInfo):
    """Models modules/options.py OptionHTML: text shown on the settings page, never saved."""

    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="", component=lambda **kwargs: None)
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """Models modules/options.py options_section: an identifier (key, title) becomes every option's section; a
    third item is the options' category id.  Other lengths change nothing."""
    if len(section_identifier) not in (2, 3):
        return options_dict
    for info in options_dict.values():
        info.section = tuple(section_identifier[:2]) if len(section_identifier) == 3 else section_identifier
        if len(section_identifier) == 3:
            info.category_id = section_identifier[2]
    return options_dict


class Options:
    """Models modules/options.py Options: attribute access to ``data`` with defaults from ``data_labels``."""

    typemap = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo] | None = None, restricted_opts: set | None = None) -> None:
        super().__setattr__("data_labels", dict(data_labels or {}))
        super().__setattr__("data", {k: v.default for k, v in self.data_labels.items() if not v.do_not_save})
        super().__setattr__("restricted_opts", restricted_opts or set())
        super().__setattr__("_onchange", {})

    def __setattr__(self, key: str, value: Any) -> None:  # mirrors Options.__setattr__
        if key in ("data", "data_labels", "restricted_opts", "_onchange", "typemap"):
            return super().__setattr__(key, value)
        if key in self.data or key in self.data_labels:
            info = self.data_labels.get(key)
            if info is not None and info.do_not_save:
                return None
            self.data[key] = value
            return None
        return super().__setattr__(key, value)

    def __getattr__(self, item: str) -> Any:  # mirrors Options.__getattr__
        data = self.__dict__.get("data", {})
        if item in data:
            return data[item]
        labels = self.__dict__.get("data_labels", {})
        if item in labels:
            return labels[item].default
        raise AttributeError(f"'Options' object has no attribute '{item}'")

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Models Options.set: False when nothing changes (same value, an unsaved option, or the assignment is
        refused); otherwise the value is stored and the option's onchange runs - if it fails, the error is shown,
        the old value is put back and the answer is False."""
        previous = self.data.get(key)
        option = self.data_labels.get(key)
        if previous == value or (option is not None and option.do_not_save):
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        hook = option.onchange if (run_callbacks and option is not None) else None
        if hook is None:
            return True
        try:
            hook()
        except Exception as e:
            errors.display(e, f"changing setting {key} to {value}")
            setattr(self, key, previous)
            return False
        return True

    def get_default(self, key: str) -> Any:  # mirrors Options.get_default
        data_label = self.data_labels.get(key)
        if data_label is None:
            return None
        return data_label.default

    def add_option(self, key: str, info: OptionInfo) -> None:
        """mirrors Options.add_option: registers the option; its default becomes the value unless one is set."""
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def onchange(self, key: str, func: Callable, call: bool = True) -> None:  # mirrors Options.onchange
        item = self.data_labels.get(key)
        if item is not None:
            item.onchange = func
        if call:
            func()

    def cast_value(self, key: str, value: Any) -> Any:
        """Models Options.cast_value: a text (e.g. from an infotext) converted to the type of the option's default
        (or of its current value when the default is None); 'False' is False for booleans; None when no type is
        known."""
        info = self.data_labels.get(key)
        reference = info.default if info is not None else None
        if reference is None:
            reference = getattr(self, key, None)
        if value is None or reference is None:
            return None
        wanted = type(reference)
        return False if (wanted is bool and value == "False") else wanted(value)

    def save(self, filename: str | None = None) -> None:  # mirrors Options.save (stand-in: nothing is written)
        pass

    def dumpjson(self) -> str:  # mirrors Options.dumpjson (simplified)
        import json

        return json.dumps(self.data, default=str)
