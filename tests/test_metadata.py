"""metadata.ini as AUTOMATIC1111 v1.10 reads it: the canonical name (``[Extension] Name``, lower-cased), and callback
order sections named ``callbacks/<canonical>/<file of the add_callback caller>/<category>`` (``script_callbacks.
add_callback``: the caller's file's base name; a section naming another extension is rejected)."""

from __future__ import annotations

import configparser
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "metadata.ini", encoding="utf8")
    return config


def test_the_canonical_name_is_declared_lower_case():
    name = read().get("Extension", "Name")
    assert name == name.lower().strip() == "negative-prompt-delay"


def test_the_order_section_names_the_callback_our_registration_makes():
    """The cfg_denoiser callback is registered from lib_negative_delay/webui/__init__.py, whose base name the WebUI
    puts in the callback's name; the section must name exactly that, or the WebUI ignores it."""
    from lib_negative_delay.webui import register_callbacks

    source = inspect.getsourcefile(register_callbacks)
    assert Path(source).name == "__init__.py" and "script_callbacks.on_cfg_denoiser" in inspect.getsource(
        register_callbacks
    )
    config = read()
    canonical = config.get("Extension", "Name")
    sections = [s for s in config.sections() if s.startswith("callbacks/")]
    assert sections == [f"callbacks/{canonical}/{Path(source).name}/cfg_denoiser"]
    after = [x.strip() for x in config.get(sections[0], "After").split(",")]
    assert "stable-diffusion-npw/npw.py/cfg_denoiser" in after  # NPW cloned into its default folder
    assert all(a.endswith("/npw.py/cfg_denoiser") and a == a.lower() for a in after)
