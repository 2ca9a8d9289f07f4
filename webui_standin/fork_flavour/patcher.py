"""The forks' model objects: ``sd_model.forge_objects.unet`` (a UnetPatcher) around a k-diffusion style model.

Facts modelled (docs/forks.md §3; the forks' ``ModelPatcher``/``UnetPatcher`` and ``ForgeObjects``):

- the loaded model carries ``forge_objects`` (what sampling uses), ``forge_objects_original`` (made at load time)
  and ``forge_objects_after_applying_lora``; a *reset* replaces ``forge_objects`` by a shallow copy of the latter,
  so the unet is the loaded model's base patcher again - the same object every time, which is why extensions
  clone it before patching;
- ``UnetPatcher.model`` is the model that condition batches are evaluated on: ``apply_model(x, sigma, **model
  conds)`` returns the x0 prediction (the forks' ``KModel``: the sigma is turned into the nearest training
  timestep, the input scaled by 1 / sqrt(sigma^2 + 1));
- ``model_options`` starts as ``{"transformer_options": {}}``; ``clone()`` shares the model and deep-copies
  ``model_options`` (``copy.deepcopy``: lists are new, plain functions are shared, a bound method's object is
  copied); ``set_model_sampler_post_cfg_function`` appends to ``sampler_post_cfg_function`` (a new list) and may set
  ``disable_cfg1_optimization``; ``add_conditioning_modifier`` appends to ``conditioning_modifiers``.

LoRA patches, ControlNet links, memory management, attention patches, ``set_model_sampler_cfg_function`` and
pre-CFG functions are not modelled.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import Any

import k_diffusion.external
import torch


class KModel:
    """The model a UnetPatcher evaluates: x0 = D(x, sigma) of the loaded fake model (calls recorded there)."""

    def __init__(self, sd_model: Any) -> None:
        self.sd_model = sd_model
        wrapper = (
            k_diffusion.external.CompVisVDenoiser
            if getattr(sd_model, "parameterization", "eps") == "v"
            else k_diffusion.external.CompVisDenoiser
        )
        self.denoiser = wrapper(sd_model, quantize=True)
        self.predictor = getattr(sd_model, "predictor", None)  # Neo's flow engines: the sampling shift's holder

    def apply_model(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        c_concat: torch.Tensor | None = None,
        c_crossattn: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The x0 prediction for the rows of ``x`` (``transformer_options``, ``control`` and the like are ignored)."""
        if getattr(self.sd_model, "is_sdxl", False) or getattr(self.sd_model, "use_distilled_cfg_scale", False):
            cond: dict = {"crossattn": c_crossattn, "vector": y}
            if "guidance" in kwargs:  # Flux dev
                cond["guidance"] = kwargs["guidance"]
        else:
            cond = {"c_crossattn": [c_crossattn]}
        if c_concat is not None:
            cond["c_concat"] = [c_concat]
        return self.denoiser(x, sigma, cond=cond)


class UnetPatcher:
    """``backend.patcher.unet.UnetPatcher`` / ``modules_forge.unet_patcher.UnetPatcher`` (the parts listed above)."""

    def __init__(self, model: KModel) -> None:
        self.model = model
        self.model_options: dict = {"transformer_options": {}}
        self.controlnet_linked_list = None
        self.extra_concat_condition = None

    def clone(self) -> UnetPatcher:
        twin = UnetPatcher(self.model)
        twin.model_options = copy.deepcopy(self.model_options)
        twin.controlnet_linked_list = self.controlnet_linked_list
        twin.extra_concat_condition = self.extra_concat_condition
        return twin

    def is_clone(self, other: Any) -> bool:
        return getattr(other, "model", None) is self.model

    def set_model_sampler_post_cfg_function(
        self, post_cfg_function: Callable, disable_cfg1_optimization: bool = False
    ) -> None:
        """Runs ``post_cfg_function(args)`` after the CFG combine of every evaluation (in registration order)."""
        listed = self.model_options.get("sampler_post_cfg_function", [])
        self.model_options["sampler_post_cfg_function"] = [*listed, post_cfg_function]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def append_model_option(self, key: str, value: Any, ensure_uniqueness: bool = False) -> None:
        listed = self.model_options.setdefault(key, [])
        if not (ensure_uniqueness and value in listed):
            listed.append(value)

    def add_conditioning_modifier(self, modifier: Callable, ensure_uniqueness: bool = False) -> None:
        """Runs ``modifier(model, x, sigma, uncond, cond, cond_scale, model_options, seed)`` -> the same tuple, before
        CFG in every evaluation."""
        self.append_model_option("conditioning_modifiers", modifier, ensure_uniqueness)


class ForgeObjects:
    """``sd_model.forge_objects`` (only the unet; clip, vae and clipvision are None)."""

    def __init__(self, unet: UnetPatcher, clip: Any = None, vae: Any = None, clipvision: Any = None) -> None:
        self.unet, self.clip, self.vae, self.clipvision = unet, clip, vae, clipvision

    def shallow_copy(self) -> ForgeObjects:
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


_ATTRIBUTES = ("forge_objects", "forge_objects_original", "forge_objects_after_applying_lora")
_attached: weakref.WeakSet = weakref.WeakSet()


def attach(sd_model: Any) -> None:
    """Gives ``sd_model`` fresh forge objects (as loading a checkpoint does), unless its own are in place."""
    original = getattr(sd_model, "forge_objects_original", None)
    if original is not None and original.unet.model.sd_model is sd_model:
        return
    original = ForgeObjects(UnetPatcher(KModel(sd_model)))
    sd_model.forge_objects_original = original
    sd_model.forge_objects_after_applying_lora = original.shallow_copy()
    sd_model.forge_objects = original.shallow_copy()
    _attached.add(sd_model)


def reload(sd_model: Any) -> None:
    """A checkpoint (re)load: new forge objects, so a patched clone in ``forge_objects`` is lost."""
    for name in _ATTRIBUTES:
        vars(sd_model).pop(name, None)
    attach(sd_model)


def reset(sd_model: Any, to_original: bool = False) -> None:
    """``forge_objects`` = a shallow copy of the loaded (``to_original``) or LoRA-applied forge objects."""
    attach(sd_model)
    source = sd_model.forge_objects_original if to_original else sd_model.forge_objects_after_applying_lora
    sd_model.forge_objects = source.shallow_copy()


def detach_all() -> None:
    """Removes the forge objects from every model that got them (back to A1111)."""
    for sd_model in list(_attached):
        for name in _ATTRIBUTES:
            vars(sd_model).pop(name, None)
    _attached.clear()
