"""Stand-in for modules/sd_models.py: a single loaded model (shared.sd_model); switching goes through the harness."""

from __future__ import annotations

from typing import Any

from modules import shared


class ModelData:
    """mirrors sd_models.ModelData (only the loaded model)."""

    @property
    def sd_model(self) -> Any:
        return shared.sd_model

    def get_sd_model(self) -> Any:
        return shared.sd_model


model_data = ModelData()
checkpoints_list: dict[str, Any] = {}
checkpoint_aliases: dict[str, Any] = {}


def select_checkpoint():  # mirrors sd_models.select_checkpoint
    return getattr(shared.sd_model, "sd_checkpoint_info", None)


def reload_model_weights(sd_model=None, info=None, forced_reload: bool = False):  # mirrors the sd_models function
    return shared.sd_model


def get_closet_checkpoint_match(search_string: str):  # mirrors sd_models.get_closet_checkpoint_match
    return None


def get_empty_cond(sd_model) -> Any:
    """mirrors sd_models.get_empty_cond: encoding of [""] (crossattn part for SDXL)."""
    d = sd_model.get_learned_conditioning([""])
    if isinstance(d, dict):
        d = d["crossattn"]
    return d
