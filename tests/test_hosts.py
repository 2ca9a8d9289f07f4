"""Host detection (AUTOMATIC1111 and its forks) from the markers each one ships (docs/forks.md §1)."""

from __future__ import annotations

import pytest

from lib_negative_delay.webui import host


@pytest.mark.parametrize(
    ("version", "backend", "smea", "name", "family"),
    [
        (None, False, False, "AUTOMATIC1111", host.A1111),
        ("2.0.1v1.10.1", True, False, "Forge", host.FORGE2),
        ("2.0.1v1.10.1", True, True, "reForge 2", host.FORGE2),  # reForge's newmain_newforge: Forge's string
        ("classic", False, False, "Forge Classic", host.FORGE1),
        ("neo", True, False, "Forge Neo", host.FORGE2),
        ("1.0.0v2-v1.10.1RC", False, True, "reForge", host.FORGE1),
        ("1.0.0v2dev2-v1.10.1RC", False, True, "reForge", host.FORGE1),
        ("0.0.17v1.8.0rc", False, False, "Forge (unknown branch)", host.FORGE1),
    ],
)
def test_classify(version, backend, smea, name, family):
    found = host.classify(version, backend, smea)
    assert (found.name, found.family) == (name, family)
    assert found.sigma_is_timestep == (family == host.A1111)
    assert found.is_fork == (family != host.A1111)


def test_detect_in_the_standin_is_a1111():
    host.forget()
    try:
        assert host.detect().name == "AUTOMATIC1111"
        assert host.panel_note(host.detect()) == ""
    finally:
        host.forget()


def test_detect_answers_for_the_module_loaded_now_even_if_it_reuses_a_freed_ones_address(monkeypatch):
    """The stand-in swaps ``modules_forge.forge_version`` between tests; a new module object often lands at the
    address of the one just freed. The cached answer must follow the object, not its id()."""
    import gc
    import sys
    import types

    monkeypatch.setattr(host, "_has", lambda name: False)
    key = "modules_forge.forge_version"
    before = sys.modules.pop(key, None)
    host.forget()
    try:
        for i in range(40):  # nothing but sys.modules holds each marker, so it is freed when replaced
            sys.modules[key] = types.ModuleType(key)
            sys.modules[key].version = "classic" if i % 2 == 0 else "1.0.0v2-v1.10.1RC"
            assert host.detect().name == ("Forge Classic" if i % 2 == 0 else "reForge"), i
            del sys.modules[key]
            gc.collect()
    finally:
        sys.modules.pop(key, None)
        if before is not None:
            sys.modules[key] = before
        host.forget()


def test_panel_note_names_classics_step_zero_skip():
    classic = host.classify("classic", False, False)
    assert "delay of 1 changes nothing" in host.panel_note(classic)
    assert "CFG scale 1" in host.panel_note(host.classify("neo", True, False))
    assert "CFG scale 1" not in host.panel_note(classic)
