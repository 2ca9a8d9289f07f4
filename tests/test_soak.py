"""No leak: generations through the stand-in with the extension on and off leave nothing behind."""

from __future__ import annotations

import sys

from conftest import ROOT


def test_soak_leaves_no_processing_objects_and_no_growth():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import soak
    finally:
        sys.path.remove(str(ROOT / "bench"))
    result = soak.run(200, seed=1)
    assert result["failed_generations"] == {}  # bad args and extension-side encoder failures never fail a generation
    assert result["processing_objects_made"] == 200
    assert result["processing_objects_alive"] <= 1  # only the harness's last_p
    for half in ("off", "on"):
        # ~150 kB per generation when every processing object was kept; small bounded caches fill below 5 kB
        assert result[half]["growth_kB_per_generation"] < 5, result
