"""The GPU world sweep's helpers (bench/world_sweep.py): variant flags and the best-delay pick."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import world_sweep  # noqa: E402


def test_a_variant_gets_the_shipped_recipe_and_may_override_it() -> None:
    name, argv = world_sweep._variant_argv("weak:--accessory-prob=0.4,--iters=9000,--batch=64", Path("o"), 3000)
    assert name == "weak"
    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    assert pairs["--out"] == str(Path("o") / "weak")
    assert pairs["--iters"] == "9000" and pairs["--batch"] == "64" and pairs["--accessory-prob"] == "0.4"
    assert pairs["--c1"] == "48" and pairs["--c2"] == "96" and pairs["--seed"] == "0"
    _, plain = world_sweep._variant_argv("ctrl:", Path("o"), 3000)
    assert dict(zip(plain[::2], plain[1::2], strict=True))["--iters"] == "3000"


def test_the_best_delay_is_the_highest_score_and_the_earliest_on_a_tie() -> None:
    rows = {0: {"score": 0.80}, 1: {"score": 0.84}, 2: {"score": 0.84}, 3: {"score": 0.70}}
    assert world_sweep._best(rows) == {"best_delay": 1, "best_ratio": 1.05}
    assert world_sweep._best({0: {"score": 0.9}, 1: {"score": 0.5}})["best_delay"] == 0
