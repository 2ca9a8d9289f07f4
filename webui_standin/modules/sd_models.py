"""Stand-in for modules/sd_models.py: the loaded model (shared.sd_model) and a registry of checkpoint "files".

Facts modelled (v1.10.1): the checkpoint selected in Settings is reloaded at the start of every generation;
loading a checkpoint of the same architecture puts its weights into the *same* model object (new hash, file name
and checkpoint info), one of another architecture (another config: SDXL base -> SDXL refiner) builds a new model
object that becomes shared.sd_model; either fires the model_loaded callbacks. The refiner switches checkpoints that way
mid-pass."""

from __future__ import annotations

import copy
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
_weights: dict[str, Any] = {}  # checkpoint file name -> a fake model holding its weights
selected: list[Any] = [None]  # the checkpoint chosen in Settings (what a generation starts with)


def register_checkpoint(model: Any, select: bool = False) -> Any:
    """Make ``model``'s weights loadable by name (a checkpoint file on disk); returns its CheckpointInfo."""
    info = model.sd_checkpoint_info
    _weights[info.filename] = copy.copy(model)  # a snapshot: the live object may later hold other weights
    checkpoints_list[getattr(info, "title", info.filename)] = info
    for attr in ("title", "name", "model_name", "short_title", "filename"):
        if getattr(info, attr, None):
            checkpoint_aliases[getattr(info, attr)] = info
    if select:
        selected[0] = info
    return info


def select_checkpoint():  # mirrors sd_models.select_checkpoint
    return getattr(shared.sd_model, "sd_checkpoint_info", None)


def reload_model_weights(sd_model=None, info=None, forced_reload: bool = False):
    """Load ``info`` (default: the selected checkpoint) into the current model object, unless it is loaded."""
    from modules import script_callbacks

    model = sd_model or shared.sd_model
    info = info or selected[0]
    current = getattr(model, "sd_checkpoint_info", None)
    if info is None or (current is not None and current.filename == info.filename and not forced_reload):
        return model
    weights = _weights[info.filename]
    if _config(weights) != _config(model):
        # another architecture (an SDXL base and its refiner): v1.10.1 trashes the loaded model and builds a new
        # one (load_model), which becomes shared.sd_model; the recorded UNet calls stay shared with the snapshot
        model = copy.copy(weights)
        shared.sd_model = model
        _attach_fork_objects(model)
    else:
        model.load_weights_from(weights)
    script_callbacks.model_loaded_callback(model)
    return model


def _config(model: Any) -> str:
    """Which config the WebUI would build ``model`` from (``sd_model.used_config``; the class for fakes without)."""
    return getattr(model, "used_config", None) or type(model).__name__


def _attach_fork_objects(model: Any) -> None:
    """A fork flavour's forge objects for a newly built model (as the flavour's checkpoint load gives them)."""
    import sys

    flavour = sys.modules.get("fork_flavour")
    if flavour is not None and flavour.active() is not None:
        from fork_flavour import patcher

        patcher.reload(model)


def get_closet_checkpoint_match(search_string: str):
    """The registered checkpoint named ``search_string`` (title, file name or model name), or None."""
    return checkpoint_aliases.get(search_string)


def get_empty_cond(sd_model) -> Any:
    """mirrors sd_models.get_empty_cond: encoding of [""] (crossattn part for SDXL)."""
    d = sd_model.get_learned_conditioning([""])
    if isinstance(d, dict):
        d = d["crossattn"]
    return d
