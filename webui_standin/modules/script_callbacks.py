"""Stand-in for modules/script_callbacks.py (v1.10.1): global callback lists, ordered and cached per category.

Modelled: ``on_<category>(fn, name=...)`` registers fn under the name '<extension>/<file>/<category>[/<name>]'
(made unique with '-1', '-2', ...); ``<category>_callback(...)`` calls the category's callbacks in order (the
user's ``prioritized_callbacks_<category>`` setting first), reporting - not raising - a callback's exception.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any

from modules import errors, extensions


@dataclasses.dataclass
class ScriptCallback:
    """Models script_callbacks.ScriptCallback: the registering file, the function and its unique name."""

    script: str
    callback: Any
    name: str = "unnamed"


@dataclasses.dataclass(eq=False)
class CFGDenoiserParams:
    """Models script_callbacks.CFGDenoiserParams, what on_cfg_denoiser callbacks get before each model evaluation
    (they may replace the tensors): ``x`` the latent being denoised, ``image_cond`` the conditioning image,
    ``sigma`` the current noise level (the model timestep for DDIM/PLMS/UniPC), ``sampling_step`` and
    ``total_sampling_steps``, ``text_cond``/``text_uncond`` the encoded prompt and negative prompt, ``denoiser`` the
    CFGDenoiser."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclasses.dataclass(eq=False)
class CFGDenoisedParams:
    """Models script_callbacks.CFGDenoisedParams: the model's output ``x`` before CFG is combined."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any


@dataclasses.dataclass(eq=False)
class AfterCFGCallbackParams:
    """Models script_callbacks.AfterCFGCallbackParams: the combined (guided) ``x``."""

    x: Any
    sampling_step: int
    total_sampling_steps: int


@dataclasses.dataclass(eq=False)
class ExtraNoiseParams:
    """Models script_callbacks.ExtraNoiseParams: img2img's extra noise, the latent and the noised latent."""

    noise: Any
    x: Any
    xi: Any


# category -> the job name v1.10.1 puts into its error report when one of the category's callbacks fails
_JOB_NAMES = {
    "app_started": "app_started_callback",
    "model_loaded": "model_loaded_callback",
    "ui_tabs": "ui_tabs_callback",
    "ui_train_tabs": "ui_train_tabs_callback",
    "ui_settings": "ui_settings_callback",
    "before_image_saved": "before_image_saved_callback",
    "image_saved": "image_saved_callback",
    "extra_noise": "callbacks_extra_noise",
    "cfg_denoiser": "cfg_denoiser_callback",
    "cfg_denoised": "cfg_denoised_callback",
    "cfg_after_cfg": "cfg_after_cfg_callback",
    "before_component": "before_component",
    "after_component": "after_component",
    "image_grid": "image_grid",
    "infotext_pasted": "infotext_pasted",
    "script_unloaded": "script_unloaded",
    "before_ui": "before_ui",
    "on_reload": "on_reload",
    "list_optimizers": "list_optimizers",
    "list_unets": "list_unets",
    "before_token_counter": "before_token_counter",
}

callback_map: dict[str, list[ScriptCallback]] = {"callbacks_" + category: [] for category in _JOB_NAMES}
"""Models script_callbacks.callback_map: 'callbacks_<category>' -> callbacks in registration order"""
ordered_callbacks_map: dict[str, list[ScriptCallback]] = {}
"""Models script_callbacks.ordered_callbacks_map (cache reused while the list length is unchanged)"""


def clear_callbacks() -> None:
    """Models script_callbacks.clear_callbacks: every category emptied, the order cache too."""
    for registered in callback_map.values():
        registered.clear()
    ordered_callbacks_map.clear()


def _caller_filename() -> str:
    """The file of the nearest caller outside this module ('unknown file' when there is none)."""
    outside = (frame.filename for frame in inspect.stack() if frame.filename != __file__)
    return next(outside, "unknown file")


def add_callback(
    callbacks: list[ScriptCallback],
    fun: Callable,
    *,
    name: str | None = None,
    category: str = "unknown",
    filename: str | None = None,
) -> None:
    """Models script_callbacks.add_callback: names the callback '<extension>/<file>/<category>[/<name>]' ('base'
    for files outside extensions); a name already taken in the list gets '-1', '-2', ... appended (up to 1000)."""
    filename = filename if filename is not None else _caller_filename()
    owner = extensions.find_extension(filename)
    parts = [owner.canonical_name if owner else "base", os.path.basename(filename), category]
    if name is not None:
        parts.append(name)
    base_name = "/".join(parts)
    taken = {c.name for c in callbacks}
    unique, suffix = base_name, 0
    while unique in taken and suffix < 1000:
        suffix += 1
        unique = f"{base_name}-{suffix}"
    callbacks.append(ScriptCallback(filename, fun, unique))


def sort_callbacks(category: str, unordered_callbacks: list[ScriptCallback], *, enable_user_sort: bool = True):
    """Models script_callbacks.sort_callbacks (no metadata.ini ordering here): registration order, with the names
    listed in opts.prioritized_callbacks_<category> moved to the front in the listed order."""
    from modules import shared

    result = list(unordered_callbacks)
    wanted = (getattr(shared.opts, "prioritized_callbacks_" + category, None) or []) if enable_user_sort else []
    front = []
    for wanted_name in wanted:
        match = next((c for c in result if c.name == wanted_name), None)
        if match is not None:
            result.remove(match)
            front.append(match)
    return front + result


def ordered_callbacks(
    category: str, unordered_callbacks: list[ScriptCallback] | None = None, *, enable_user_sort: bool = True
) -> list[ScriptCallback]:
    """Models script_callbacks.ordered_callbacks, including its cache: a category's sorted list is reused as long
    as the number of registered callbacks has not changed."""
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get("callbacks_" + category, [])
    if not enable_user_sort:
        return sort_callbacks(category, unordered_callbacks, enable_user_sort=False)
    cached = ordered_callbacks_map.get(category)
    if cached is None or len(cached) != len(unordered_callbacks):
        cached = ordered_callbacks_map[category] = sort_callbacks(category, unordered_callbacks)
    return cached


def report_exception(c: ScriptCallback, job: str) -> None:
    """Models script_callbacks.report_exception."""
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def _each(category: str, *args: Any, reverse: bool = False, **kwargs: Any) -> list:
    """Calls the category's callbacks in order (or reversed); returns the results of those that did not fail."""
    callbacks = ordered_callbacks(category)
    results = []
    for c in reversed(callbacks) if reverse else callbacks:
        try:
            results.append(c.callback(*args, **kwargs))
        except Exception:
            report_exception(c, _JOB_NAMES[category])
    return results


def app_started_callback(demo, app) -> None:
    """Models script_callbacks.app_started_callback."""
    _each("app_started", demo, app)


def model_loaded_callback(sd_model) -> None:
    """Models script_callbacks.model_loaded_callback."""
    _each("model_loaded", sd_model)


def ui_tabs_callback() -> list:
    """Models script_callbacks.ui_tabs_callback: the tabs all callbacks return, concatenated."""
    return [tab for tabs in _each("ui_tabs") for tab in (tabs or [])]


def ui_settings_callback() -> None:
    """Models script_callbacks.ui_settings_callback."""
    _each("ui_settings")


def before_ui_callback() -> None:
    """Models script_callbacks.before_ui_callback."""
    _each("before_ui")


def extra_noise_callback(params: ExtraNoiseParams) -> None:
    """Models script_callbacks.extra_noise_callback."""
    _each("extra_noise", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    """Models script_callbacks.cfg_denoiser_callback: each callback in order; an exception is reported, not raised."""
    _each("cfg_denoiser", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    """Models script_callbacks.cfg_denoised_callback."""
    _each("cfg_denoised", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    """Models script_callbacks.cfg_after_cfg_callback."""
    _each("cfg_after_cfg", params)


def infotext_pasted_callback(infotext: str, params: dict) -> None:
    """Models script_callbacks.infotext_pasted_callback."""
    _each("infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:
    """Models script_callbacks.script_unloaded_callback: last registered first."""
    _each("script_unloaded", reverse=True)


def before_component_callback(component, **kwargs) -> None:
    """Models script_callbacks.before_component_callback."""
    _each("before_component", component, **kwargs)


def after_component_callback(component, **kwargs) -> None:
    """Models script_callbacks.after_component_callback."""
    _each("after_component", component, **kwargs)


def _drop(condition: Callable[[ScriptCallback], bool]) -> None:
    """Removes the matching callbacks from every category and from the order cache."""
    for registry in (*callback_map.values(), *ordered_callbacks_map.values()):
        registry[:] = [c for c in registry if not condition(c)]


def remove_current_script_callbacks() -> None:
    """Models script_callbacks.remove_current_script_callbacks: drops everything the calling file registered."""
    filename = _caller_filename()
    if filename != "unknown file":
        _drop(lambda c: c.script == filename)


def remove_callbacks_for_function(callback_func: Callable) -> None:
    """Models script_callbacks.remove_callbacks_for_function."""
    _drop(lambda c: c.callback == callback_func)


def _register(category: str, callback: Callable, name: str | None) -> None:
    add_callback(
        callback_map["callbacks_" + category], callback, name=name, category=category, filename=_caller_filename()
    )


def on_app_started(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_app_started: fn(demo, app)."""
    _register("app_started", callback, name)


def on_model_loaded(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_model_loaded: fn(sd_model)."""
    _register("model_loaded", callback, name)


def on_ui_tabs(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_ui_tabs: fn() -> [(block, title, elem_id), ...]."""
    _register("ui_tabs", callback, name)


def on_ui_settings(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_ui_settings: fn() adds options with shared.opts.add_option."""
    _register("ui_settings", callback, name)


def on_before_ui(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_before_ui: fn()."""
    _register("before_ui", callback, name)


def on_extra_noise(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_extra_noise: fn(params: ExtraNoiseParams)."""
    _register("extra_noise", callback, name)


def on_cfg_denoiser(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_cfg_denoiser: fn(params: CFGDenoiserParams) before every denoiser evaluation."""
    _register("cfg_denoiser", callback, name)


def on_cfg_denoised(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_cfg_denoised: fn(params: CFGDenoisedParams)."""
    _register("cfg_denoised", callback, name)


def on_cfg_after_cfg(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_cfg_after_cfg: fn(params: AfterCFGCallbackParams)."""
    _register("cfg_after_cfg", callback, name)


def on_before_component(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_before_component: fn(component, **kwargs)."""
    _register("before_component", callback, name)


def on_after_component(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_after_component: fn(component, **kwargs)."""
    _register("after_component", callback, name)


def on_infotext_pasted(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_infotext_pasted: fn(infotext: str, params: dict) may edit params in place."""
    _register("infotext_pasted", callback, name)


def on_script_unloaded(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_script_unloaded: fn() when scripts are reloaded."""
    _register("script_unloaded", callback, name)


def on_before_token_counter(callback: Callable, *, name: str | None = None) -> None:
    """Models script_callbacks.on_before_token_counter."""
    _register("before_token_counter", callback, name)
