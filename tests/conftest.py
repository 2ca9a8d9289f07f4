"""Shared fixtures: the WebUI stand-in started with the real extension, and a per-evaluation recorder."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "webui_standin") not in sys.path:
    sys.path.insert(0, str(ROOT / "webui_standin"))

TITLE = "Negative Prompt Delay"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def ext_log():
    from lib_negative_delay.settings import log

    handler = Records()
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


@dataclass
class Evaluation:
    index: int  # denoiser.step
    sampling_step: int
    sigma: float
    uncond: object  # what the UNet will get (after the extension's callback)
    cond: object


class Recorder:
    """Registered after the extension's callback, so it sees the uncond the UNet is about to get."""

    def __init__(self) -> None:
        self.evaluations: list[Evaluation] = []

    def __call__(self, params) -> None:
        u = params.text_uncond
        copy = None if u is None else {k: v.clone() for k, v in u.items()} if isinstance(u, dict) else u.clone()
        self.evaluations.append(
            Evaluation(
                int(params.denoiser.step), int(params.sampling_step), float(params.sigma[0]), copy, params.text_cond
            )
        )

    def clear(self) -> None:
        self.evaluations.clear()


def _start(model):
    import harness
    from modules import script_callbacks

    harness.start(str(ROOT), model)
    recorder = Recorder()
    script_callbacks.on_cfg_denoiser(recorder)
    return harness, recorder


@pytest.fixture
def sd1():
    from fake_models import FakeSD1Model

    model = FakeSD1Model()
    h, rec = _start(model)
    return h, model, rec


@pytest.fixture
def sdxl():
    from fake_models import FakeSDXLModel

    model = FakeSDXLModel()
    h, rec = _start(model)
    return h, model, rec


def crossattn(c) -> torch.Tensor:
    return c["crossattn"] if isinstance(c, dict) else c


def same(a, b) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
        )
    return a.shape == b.shape and torch.equal(a, b)


def encode_empty(model, width: int, height: int):
    """The WebUI's own encoding of an empty negative prompt (what the extension must reproduce)."""
    from modules import prompt_parser

    return model.get_learned_conditioning(
        prompt_parser.SdConditioning([""], is_negative_prompt=True, width=width, height=height)
    )
