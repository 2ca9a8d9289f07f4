"""Stand-in for modules/options.py (OptionInfo, options_section, Options)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modules import errors


class OptionInfo:
    """mirrors modules/options.py OptionInfo (same constructor arguments and chainable helpers)."""

    def __init__(
        self,
        default: Any = None,
        label: str = "",
        component: Any = None,
        component_args: Any = None,
        onchange: Callable | None = None,
        section: Any = None,
        refresh: Callable | None = None,
        comment_before: str = "",
        comment_after: str = "",
        infotext: str | None = None,
        restrict_api: bool = False,
        category_id: str | None = None,
    ) -> None:
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def link(self, label: str, url: str) -> OptionInfo:  # mirrors OptionInfo.link
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo:  # mirrors OptionInfo.js
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info: str) -> OptionInfo:  # mirrors OptionInfo.info
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo:  # mirrors OptionInfo.html
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo:  # mirrors OptionInfo.needs_restart
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self) -> OptionInfo:  # mirrors OptionInfo.needs_reload_ui
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    """mirrors modules/options.py OptionHTML."""

    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="", component=lambda **kwargs: None)
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """mirrors modules/options.py options_section: stamps the section onto every OptionInfo."""
    for v in options_dict.values():
        if len(section_identifier) == 2:
            v.section = section_identifier
        elif len(section_identifier) == 3:
            v.section = section_identifier[0:2]
            v.category_id = section_identifier[2]
    return options_dict


class Options:
    """mirrors modules/options.py Options: attribute access to ``data`` with defaults from ``data_labels``."""

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
        """mirrors Options.set: returns True if the value changed; runs the option's onchange."""
        oldval = self.data.get(key, None)
        if oldval == value:
            return False
        option = self.data_labels.get(key)
        if option is not None and option.do_not_save:
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        if run_callbacks and option is not None and option.onchange is not None:
            try:
                option.onchange()
            except Exception as e:
                errors.display(e, f"changing setting {key} to {value}")
                setattr(self, key, oldval)
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

    def cast_value(self, key: str, value: Any) -> Any:  # mirrors Options.cast_value
        if value is None:
            return None
        default_value = self.data_labels[key].default if key in self.data_labels else None
        if default_value is None:
            default_value = getattr(self, key, None)
        if default_value is None:
            return None
        expected_type = type(default_value)
        if expected_type is bool and value == "False":
            value = False
        else:
            value = expected_type(value)
        return value

    def save(self, filename: str | None = None) -> None:  # mirrors Options.save (stand-in: nothing is written)
        pass

    def dumpjson(self) -> str:  # mirrors Options.dumpjson (simplified)
        import json

        return json.dumps(self.data, default=str)
