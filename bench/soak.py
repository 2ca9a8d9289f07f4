"""Soak run: many generations through the WebUI stand-in, mixing settings, bad arguments and model failures,
with the extension on and off. Reports memory growth per generation after a warm-up, for each half.

    .venv/bin/python bench/soak.py [--generations 1000]

The fake model records every UNet call for the tests; the soak clears that record after each generation, so
what remains is growth of the stand-in or of the extension.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import sys
import time
import tracemalloc
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "webui_standin")]

import torch  # noqa: E402

TITLE = "Negative Prompt Delay"


class FailingOnce:
    """Makes the fake model's text encoder raise on every ``period``-th encoding the extension asks for."""

    def __init__(self, model, period: int) -> None:
        self.model, self.period, self.count = model, period, 0
        self.original = model.get_learned_conditioning

    def __call__(self, batch):
        if sys._getframe(1).f_globals.get("__name__") == "lib_negative_delay.webui.empty_cond":
            self.count += 1
            if self.count % self.period == 0:
                raise RuntimeError("simulated text-encoder failure")
        return self.original(batch)


def random_request(rng: random.Random, enabled: bool) -> dict:
    args: list = [True, rng.choice([0, 1, 2, 3, 9, -4, "abc", None])]
    if rng.random() < 0.3:
        args += [True, rng.choice([0.2, 0.5, 1.7, "x"]), 0, 3]
    fields = dict(
        prompt=rng.choice(["a cat", "a cat AND a dog", "a [cat:dog:2] " * 3]),
        negative_prompt=rng.choice(["glasses", "", "blurry " * 40]),
        steps=rng.choice([4, 5, 6]),
        sampler_name=rng.choice(["Euler", "Heun", "DPM++ 2M", "DDIM", "UniPC", "DPM fast", "Restart"]),
        batch_size=rng.choice([1, 2]),
        width=64,
        height=64,
        seed=rng.randrange(1000),
    )
    if enabled:
        fields["alwayson_scripts"] = {TITLE: {"args": args}}
    return fields


def run(generations: int, seed: int = 0) -> dict:
    import harness
    from fake_models import FakeSD1Model

    torch.set_num_threads(1)
    model = FakeSD1Model()
    harness.start(str(ROOT), model)
    from lib_negative_delay.settings import process_log

    logger = logging.getLogger("negative_prompt_delay")
    level, seen = logger.level, set(process_log.seen)
    logger.setLevel(logging.CRITICAL)
    try:
        return _soak(harness, model, generations, seed)
    finally:  # leave the process as it was: log level, and which once-only messages were already said
        logger.setLevel(level)
        process_log.seen.clear()
        process_log.seen.update(seen)


def _soak(harness, model, generations: int, seed: int) -> dict:
    model.get_learned_conditioning = FailingOnce(model, period=7)
    rng = random.Random(seed)
    alive: list[weakref.ref] = []
    errors: dict[str, int] = {}
    out: dict = {}
    for label, enabled in (("off", False), ("on", True)):
        warm = max(20, generations // 10)
        start_mem = None
        t0 = time.perf_counter()
        for i in range(generations // 2):
            try:
                harness.txt2img(**random_request(rng, enabled))
            except Exception as exc:  # counted: the extension must never be the cause
                errors[f"{type(exc).__name__}: {exc}"[:120]] = errors.get(f"{type(exc).__name__}: {exc}"[:120], 0) + 1
            p = harness.current().last_p
            if p is not None:
                alive.append(weakref.ref(p))
            model.reset_calls()
            if i == warm:
                gc.collect()
                tracemalloc.start()
                start_mem = tracemalloc.get_traced_memory()[0]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start_mem
        tracemalloc.stop()
        measured = generations // 2 - warm - 1
        out[label] = {
            "generations": generations // 2,
            "growth_kB_per_generation": round(grown / 1024 / max(1, measured), 2),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    out["processing_objects_alive"] = sum(r() is not None for r in alive)
    out["processing_objects_made"] = len(alive)
    out["failed_generations"] = errors
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(run(args.generations), indent=2))


if __name__ == "__main__":
    main()
