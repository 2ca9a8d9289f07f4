"""Stand-in for modules/extensions.py: the list of installed extensions (the harness registers the one under test)."""

from __future__ import annotations

import os


class ExtensionMetadata:
    """mirrors modules/extensions.py ExtensionMetadata (no metadata.ini support in the stand-in)."""

    def get_script_requirements(self, field, section, extra_section=None) -> list:
        return []

    def list_callback_order_instructions(self) -> list:
        return []


class Extension:
    """mirrors modules/extensions.py Extension (only the attributes the WebUI's loaders read)."""

    def __init__(self, name: str, path: str, enabled: bool = True, is_builtin: bool = False) -> None:
        self.name = name
        self.canonical_name = name.lower()
        self.path = os.path.abspath(path)
        self.enabled = enabled
        self.is_builtin = is_builtin
        self.metadata = ExtensionMetadata()


extensions: list[Extension] = []


def active() -> list[Extension]:  # mirrors modules/extensions.py active
    return [x for x in extensions if x.enabled]


def find_extension(filename: str) -> Extension | None:  # mirrors modules/extensions.py find_extension
    parentdir = os.path.dirname(os.path.realpath(filename))
    for ext in extensions:
        if os.path.realpath(ext.path) == parentdir or parentdir.startswith(os.path.realpath(ext.path) + os.sep):
            return ext
    return None
