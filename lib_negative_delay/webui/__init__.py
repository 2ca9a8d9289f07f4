"""The AUTOMATIC1111 WebUI adapter. Importing it needs the WebUI's ``modules`` package."""

from __future__ import annotations


def _already_registered(script_callbacks: object, kind: str, fn: object) -> bool:
    """Best-effort look into ``script_callbacks.callback_map`` (the WebUI clears it when scripts reload)."""
    callback_map = getattr(script_callbacks, "callback_map", None)
    if not isinstance(callback_map, dict):
        return False
    return any(getattr(entry, "callback", None) is fn for entry in callback_map.get(kind, []))


def register_callbacks() -> None:
    """Register the WebUI callbacks; called when the script file is imported.

    The WebUI clears all callbacks before it (re)loads scripts, and imports each script file once per
    load, so this runs once per load; a second call in the same load adds nothing.
    """
    from modules import script_callbacks

    from lib_negative_delay.webui import empty_cond, generation, options, xyz

    hooks = [
        ("callbacks_cfg_denoiser", script_callbacks.on_cfg_denoiser, generation.on_cfg_denoiser),
        ("callbacks_cfg_denoised", script_callbacks.on_cfg_denoised, generation.on_cfg_denoised),
        # the analysis sheet's guided result (every host calls it; one without it gets no sheet, not an import error)
        ("callbacks_cfg_after_cfg", getattr(script_callbacks, "on_cfg_after_cfg", None), generation.on_cfg_after_cfg),
        ("callbacks_model_loaded", script_callbacks.on_model_loaded, empty_cond.clear),
        ("callbacks_before_ui", script_callbacks.on_before_ui, xyz.register_axes),
        ("callbacks_ui_settings", script_callbacks.on_ui_settings, options.on_ui_settings),
    ]
    for kind, register, fn in hooks:
        if register is not None and not _already_registered(script_callbacks, kind, fn):
            register(fn)
    # The WebUI loads its own scripts/ (X/Y/Z plot included) before extensions' scripts, so the axes can be added
    # now. With --nowebui the UI is built before the before_ui callbacks run, and the X/Y/Z script takes its
    # axis list when its UI is built: registering only in before_ui would leave the axes out of the API.
    xyz.register_axes(quiet=True)
