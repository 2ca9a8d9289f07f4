"""Stand-in for modules/paths.py (and paths_internal)."""

import os

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""mirrors modules/paths_internal.py script_path: the WebUI root (here: the stand-in root)."""
data_path = script_path
models_path = os.path.join(script_path, "models")
extensions_dir = os.path.join(script_path, "extensions")
