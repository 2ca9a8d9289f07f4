"""Stand-in for modules/script_callbacks.py (v1.10.1): global callback lists, ordered and cached per category."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any

from modules import errors, extensions


@dataclasses.dataclass
class ScriptCallback:
    """mirrors modules/script_callbacks.py ScriptCallback."""

    script: str
    callback: Any
    name: str = "unnamed"


class CFGDenoiserParams:
    """mirrors modules/script_callbacks.py CFGDenoiserParams."""

    def __init__(
        self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None
    ) -> None:
        self.x = x
        """Latent image representation in the process of being denoised"""
        self.image_cond = image_cond
        """Conditioning image"""
        self.sigma = sigma
        """Current sigma noise step value (the model timestep for DDIM/PLMS/UniPC)"""
        self.sampling_step = sampling_step
        """Current Sampling step number"""
        self.total_sampling_steps = total_sampling_steps
        """Total number of sampling steps planned"""
        self.text_cond = text_cond
        """Encoder hidden states of text conditioning from prompt"""
        self.text_uncond = text_uncond
        """Encoder hidden states of text conditioning from negative prompt"""
        self.denoiser = denoiser
        """Current CFGDenoiser object with processing parameters"""


class CFGDenoisedParams:
    """mirrors modules/script_callbacks.py CFGDenoisedParams."""

    def __init__(self, x, sampling_step, total_sampling_steps, inner_model) -> None:
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    """mirrors modules/script_callbacks.py AfterCFGCallbackParams."""

    def __init__(self, x, sampling_step, total_sampling_steps) -> None:
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class ExtraNoiseParams:
    """mirrors modules/script_callbacks.py ExtraNoiseParams."""

    def __init__(self, noise, x, xi) -> None:
        self.noise = noise
        self.x = x
        self.xi = xi


_CATEGORIES = [
    "app_started",
    "model_loaded",
    "ui_tabs",
    "ui_train_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "extra_noise",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "before_component",
    "after_component",
    "image_grid",
    "infotext_pasted",
    "script_unloaded",
    "before_ui",
    "on_reload",
    "list_optimizers",
    "list_unets",
    "before_token_counter",
]
callback_map: dict[str, list[ScriptCallback]] = {f"callbacks_{c}": [] for c in _CATEGORIES}
"""mirrors script_callbacks.callback_map"""
ordered_callbacks_map: dict[str, list[ScriptCallback]] = {}
"""mirrors script_callbacks.ordered_callbacks_map (cache reused while the list length is unchanged)"""


def clear_callbacks() -> None:  # mirrors script_callbacks.clear_callbacks
    for callback_list in callback_map.values():
        callback_list.clear()
    ordered_callbacks_map.clear()


def _caller_filename() -> str:
    stack = [x for x in inspect.stack() if x.filename != __file__]
    return stack[0].filename if stack else "unknown file"


def add_callback(
    callbacks: list[ScriptCallback],
    fun: Callable,
    *,
    name: str | None = None,
    category: str = "unknown",
    filename: str | None = None,
) -> None:
    """mirrors script_callbacks.add_callback: names the callback '<extension>/<file>/<category>[/<name>]'."""
    if filename is None:
        filename = _caller_filename()
    extension = extensions.find_extension(filename)
    extension_name = extension.canonical_name if extension else "base"
    callback_name = f"{extension_name}/{os.path.basename(filename)}/{category}"
    if name is not None:
        callback_name += f"/{name}"
    unique_callback_name = callback_name
    for index in range(1000):
        existing = any(x.name == unique_callback_name for x in callbacks)
        if not existing:
            break
        unique_callback_name = f"{callback_name}-{index + 1}"
    callbacks.append(ScriptCallback(filename, fun, unique_callback_name))


def sort_callbacks(category: str, unordered_callbacks: list[ScriptCallback], *, enable_user_sort: bool = True):
    """mirrors script_callbacks.sort_callbacks (no metadata.ini ordering; honours opts.prioritized_callbacks_*)."""
    from modules import shared

    callbacks = unordered_callbacks.copy()
    if enable_user_sort:
        for name in reversed(getattr(shared.opts, "prioritized_callbacks_" + category, None) or []):
            index = next((i for i, callback in enumerate(callbacks) if callback.name == name), None)
            if index is not None:
                callbacks.insert(0, callbacks.pop(index))
    return callbacks


def ordered_callbacks(
    category: str, unordered_callbacks: list[ScriptCallback] | None = None, *, enable_user_sort: bool = True
) -> list[ScriptCallback]:
    """mirrors script_callbacks.ordered_callbacks (including its length-keyed cache)."""
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get("callbacks_" + category, [])
    if not enable_user_sort:
        return sort_callbacks(category, unordered_callbacks, enable_user_sort=False)
    callbacks = ordered_callbacks_map.get(category)
    if callbacks is not None and len(callbacks) == len(unordered_callbacks):
        return callbacks
    callbacks = sort_callbacks(category, unordered_callbacks)
    ordered_callbacks_map[category] = callbacks
    return callbacks


def report_exception(c: ScriptCallback, job: str) -> None:  # mirrors script_callbacks.report_exception
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def _run(category: str, job: str, *args: Any) -> None:
    for c in ordered_callbacks(category):
        try:
            c.callback(*args)
        except Exception:
            report_exception(c, job)


def app_started_callback(demo, app) -> None:  # mirrors script_callbacks.app_started_callback
    _run("app_started", "app_started_callback", demo, app)


def model_loaded_callback(sd_model) -> None:  # mirrors script_callbacks.model_loaded_callback
    _run("model_loaded", "model_loaded_callback", sd_model)


def ui_tabs_callback() -> list:  # mirrors script_callbacks.ui_tabs_callback
    res: list = []
    for c in ordered_callbacks("ui_tabs"):
        try:
            res += c.callback() or []
        except Exception:
            report_exception(c, "ui_tabs_callback")
    return res


def ui_settings_callback() -> None:  # mirrors script_callbacks.ui_settings_callback
    _run("ui_settings", "ui_settings_callback")


def before_ui_callback() -> None:  # mirrors script_callbacks.before_ui_callback
    _run("before_ui", "before_ui")


def extra_noise_callback(params: ExtraNoiseParams) -> None:  # mirrors script_callbacks.extra_noise_callback
    _run("extra_noise", "callbacks_extra_noise", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    """mirrors script_callbacks.cfg_denoiser_callback: each callback in order; an exception is reported, not raised."""
    _run("cfg_denoiser", "cfg_denoiser_callback", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:  # mirrors script_callbacks.cfg_denoised_callback
    _run("cfg_denoised", "cfg_denoised_callback", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:  # mirrors script_callbacks.cfg_after_cfg_callback
    _run("cfg_after_cfg", "cfg_after_cfg_callback", params)


def infotext_pasted_callback(infotext: str, params: dict) -> None:  # mirrors script_callbacks.infotext_pasted_callback
    _run("infotext_pasted", "infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:  # mirrors script_callbacks.script_unloaded_callback (reverse order)
    for c in reversed(ordered_callbacks("script_unloaded")):
        try:
            c.callback()
        except Exception:
            report_exception(c, "script_unloaded")


def before_component_callback(component, **kwargs) -> None:  # mirrors script_callbacks.before_component_callback
    for c in ordered_callbacks("before_component"):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, "before_component")


def after_component_callback(component, **kwargs) -> None:  # mirrors script_callbacks.after_component_callback
    for c in ordered_callbacks("after_component"):
        try:
            c.callback(component, **kwargs)
        except Exception:
            report_exception(c, "after_component")


def remove_current_script_callbacks() -> None:  # mirrors script_callbacks.remove_current_script_callbacks
    filename = _caller_filename()
    if filename == "unknown file":
        return
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(callback_to_remove)
    for ordered_callbacks_list in ordered_callbacks_map.values():
        for callback_to_remove in [cb for cb in ordered_callbacks_list if cb.script == filename]:
            ordered_callbacks_list.remove(callback_to_remove)


def remove_callbacks_for_function(callback_func: Callable) -> None:  # mirrors script_callbacks (same name)
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)
    for ordered_callback_list in ordered_callbacks_map.values():
        for callback_to_remove in [cb for cb in ordered_callback_list if cb.callback == callback_func]:
            ordered_callback_list.remove(callback_to_remove)


def _register(category: str, callback: Callable, name: str | None) -> None:
    add_callback(
        callback_map["callbacks_" + category], callback, name=name, category=category, filename=_caller_filename()
    )


def on_app_started(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_app_started
    _register("app_started", callback, name)


def on_model_loaded(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_model_loaded
    _register("model_loaded", callback, name)


def on_ui_tabs(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_ui_tabs
    _register("ui_tabs", callback, name)


def on_ui_settings(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_ui_settings
    _register("ui_settings", callback, name)


def on_before_ui(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_before_ui
    _register("before_ui", callback, name)


def on_extra_noise(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_extra_noise
    _register("extra_noise", callback, name)


def on_cfg_denoiser(callback: Callable, *, name: str | None = None) -> None:
    """mirrors script_callbacks.on_cfg_denoiser: fn(params: CFGDenoiserParams) before every denoiser evaluation."""
    _register("cfg_denoiser", callback, name)


def on_cfg_denoised(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks.on_cfg_denoised
    _register("cfg_denoised", callback, name)


def on_cfg_after_cfg(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks (same name)
    _register("cfg_after_cfg", callback, name)


def on_before_component(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks (same name)
    _register("before_component", callback, name)


def on_after_component(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks (same name)
    _register("after_component", callback, name)


def on_infotext_pasted(callback: Callable, *, name: str | None = None) -> None:
    """mirrors script_callbacks.on_infotext_pasted: fn(infotext: str, params: dict) may edit params in place."""
    _register("infotext_pasted", callback, name)


def on_script_unloaded(callback: Callable, *, name: str | None = None) -> None:  # mirrors script_callbacks (same name)
    _register("script_unloaded", callback, name)


def on_before_token_counter(callback: Callable, *, name: str | None = None) -> None:  # mirrors on_before_token_counter
    _register("before_token_counter", callback, name)
