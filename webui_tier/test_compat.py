"""This extension beside other WebUI extensions in a real WebUI v1.10.1 (issue 23): the combinations of
``webui_tier/compat.py``, each with a fixed delay and with auto-detect, batch 2.

Skipped unless ``WEBUI_URL`` (a running WebUI with this extension and the trace extension) and
``NPD_COMPAT_EXTENSIONS`` (the folder the other extensions were exported to, ``webui_tier/tools/fetch_compat.md``)
are set; a combination whose folder is not there, or whose script the WebUI does not list, is skipped.
``NPD_COMPAT_WEBUI_LOG`` (the WebUI's log file) turns on the traceback check. Run with
``WEBUI_URL=http://127.0.0.1:7861 NPD_COMPAT_EXTENSIONS=... .venv/bin/python -m pytest webui_tier/test_compat.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webui_tier import compat  # noqa: E402

WEBUI_URL = os.environ.get("WEBUI_URL")
pytestmark = pytest.mark.skipif(
    not (WEBUI_URL and compat.extensions_dir()),
    reason="set WEBUI_URL and NPD_COMPAT_EXTENSIONS (webui_tier/tools/fetch_compat.md)",
)


@pytest.fixture(scope="session")
def webui():
    side = compat.CompatWebUI(WEBUI_URL, os.environ.get("NPD_COMPAT_WEBUI_LOG"))
    side.check()
    return side


@pytest.mark.parametrize("mode", list(compat.MODES))
@pytest.mark.parametrize("name", [c["name"] for c in compat.COMBINATIONS])
def test_combination(name, mode, webui):
    combo = compat.BY_NAME[name]
    if not (compat.extensions_dir() / combo["folder"]).is_dir():
        pytest.skip(f"{combo['folder']} not in NPD_COMPAT_EXTENSIONS")
    if combo["title"].lower() not in {s["name"] for s in webui.script_info()}:
        pytest.skip(f"{combo['title']!r} is not installed in the WebUI")
    result = compat.check(webui, combo, mode)
    assert result["ok"], f"{name} ({mode}):\n" + "\n".join(result["problems"])
