"""Stand-in for modules/script_loading.py."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType


def load_module(path: str) -> ModuleType:
    """mirrors script_loading.load_module: executes the file as a module named after its file name (e.g.
    'negative_prompt_delay.py'); the module is not added to sys.modules."""
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
