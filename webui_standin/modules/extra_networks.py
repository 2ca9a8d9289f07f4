"""Stand-in for modules/extra_networks.py: ``<lora:name:multiplier>`` tags in prompts.

Facts modelled (v1.10.1): tags are removed from the prompts before they are encoded; the networks they name
are activated before the batch's conditioning is computed (again with the hires prompts' tags before the hires
conditioning) and deactivated when the generation ends. A LoRA that touches the text encoder changes what
``get_learned_conditioning`` returns for every prompt, the empty one included. Here a LoRA of any name shifts
the fake text encoder's output by its multiplier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modules import shared

_TAG = re.compile(r"<(\w+):([^>:]+)(?::([^>]*))?>")


@dataclass(frozen=True)
class ExtraNetworkParams:
    name: str
    multiplier: float


def parse_prompts(prompts: list[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """Strip the tags from every prompt; the networks of the first prompt that has any are the batch's."""
    found: dict[str, list[ExtraNetworkParams]] = {}
    cleaned = []
    for prompt in prompts:
        tags = _TAG.findall(prompt)
        if tags and not found:
            for kind, name, mult in tags:
                found.setdefault(kind, []).append(ExtraNetworkParams(name, float(mult) if mult else 1.0))
        cleaned.append(_TAG.sub("", prompt))
    return cleaned, found


def _encoders(model) -> list:
    return [getattr(model, k) for k in ("text_encoder", "text_encoder_l", "text_encoder_g") if hasattr(model, k)]


def activate(p, data: dict[str, list[ExtraNetworkParams]]) -> None:
    strength = sum(x.multiplier for x in data.get("lora", []))
    for encoder in _encoders(shared.sd_model):
        encoder.network_strength = strength


def deactivate(p, data: dict[str, list[ExtraNetworkParams]]) -> None:
    for encoder in _encoders(shared.sd_model):
        encoder.network_strength = 0.0
