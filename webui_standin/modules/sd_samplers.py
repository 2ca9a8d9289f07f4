"""Stand-in for modules/sd_samplers.py (v1.10.1): the sampler registry and name handling.

Facts modelled: every sampler is listed in the order k-diffusion samplers, timestep samplers, LCM; a pass gets a
fresh sampler object (with its own CFG denoiser) from ``create_sampler``; ``samplers_map`` maps the lower-cased
name and every alias to the name; samplers hidden by the ``hide_samplers`` option stay usable but are not offered;
a name such as "DPM++ 2M Karras" (v1.9 and older, when the scheduler was part of the name) is split into sampler
and schedule type by its suffix, and ``fix_p_invalid_sampler_and_scheduler`` logs such a correction.
"""

from __future__ import annotations

import logging

from modules import (
    sd_samplers_common,
    sd_samplers_kdiffusion,
    sd_samplers_lcm,
    sd_samplers_timesteps,
    sd_schedulers,
    shared,
)

all_samplers = (
    sd_samplers_kdiffusion.samplers_data_k_diffusion
    + sd_samplers_timesteps.samplers_data_timesteps
    + sd_samplers_lcm.samplers_data_lcm
)
all_samplers_map = {entry.name: entry for entry in all_samplers}

samplers: list[sd_samplers_common.SamplerData] = []
samplers_for_img2img: list[sd_samplers_common.SamplerData] = []
samplers_map: dict[str, str] = {}
samplers_hidden: set[str] = set()


def find_sampler_config(name: str | None):
    """The SamplerData of ``name`` (None for an unknown name); the first sampler for no name."""
    return all_samplers[0] if name is None else all_samplers_map.get(name)


def create_sampler(name: str, model):
    """A new sampler object for one pass; samplers flagged ``no_sdxl`` refuse SDXL models."""
    config = find_sampler_config(name)
    assert config is not None, f"bad sampler name: {name}"
    if model.is_sdxl and config.options.get("no_sdxl", False):
        raise Exception(f"Sampler {config.name} is not supported for SDXL")
    made = config.constructor(model)
    made.config = config
    return made


def set_samplers() -> None:
    """Rebuilds the visible lists and the name/alias lookup (the WebUI calls it again when options change)."""
    global samplers, samplers_for_img2img, samplers_hidden
    samplers_hidden = set(shared.opts.hide_samplers)
    samplers = samplers_for_img2img = all_samplers
    samplers_map.clear()
    samplers_map.update({key.lower(): entry.name for entry in all_samplers for key in (entry.name, *entry.aliases)})


def visible_sampler_names() -> list[str]:
    return [entry.name for entry in samplers if entry.name not in samplers_hidden]


def _split_scheduler_suffix(name: str):
    """Strips " <label, name or alias of a scheduler>" suffixes, schedulers in their listed order (one strip per
    scheduler); returns the rest and the last scheduler stripped (None if none)."""
    found = None
    for scheduler in sd_schedulers.schedulers:
        suffix = next(
            (s for s in (scheduler.label, scheduler.name, *(scheduler.aliases or [])) if name.endswith(" " + s)), None
        )
        if suffix is not None:
            found, name = scheduler, name[: -len(suffix) - 1]
    return name, found


def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic: bool = True):
    """(sampler name, schedule type label) for a possibly old-style sampler name and a scheduler name or label.

    An unknown scheduler is the first one (Automatic); an unknown sampler name is tried without a scheduler suffix,
    the suffix's scheduler winning; if that still names no sampler the name is returned as given. With
    convert_automatic the label of the automatic scheduler is "Automatic" for a known sampler.
    """
    scheduler = sd_schedulers.schedulers_map.get(scheduler_name, sd_schedulers.schedulers[0])
    name = sampler_name or ""
    known = name in all_samplers_map
    if not known:
        stripped, suffix_scheduler = _split_scheduler_suffix(name)
        scheduler = suffix_scheduler or scheduler
        known = stripped in all_samplers_map
        name = stripped if known else sampler_name
    label = scheduler.label
    if convert_automatic and known and scheduler.name == "automatic":
        label = "Automatic"
    return name, label


def fix_p_invalid_sampler_and_scheduler(p) -> None:
    """Rewrites p.sampler_name / p.scheduler to what ``get_sampler_and_scheduler`` makes of them, with a warning."""
    before = (p.sampler_name, p.scheduler)
    p.sampler_name, p.scheduler = get_sampler_and_scheduler(*before, convert_automatic=False)
    if (p.sampler_name, p.scheduler) != before:
        logging.warning(
            f'Sampler Scheduler autocorrection: "{before[0]}" -> "{p.sampler_name}", "{before[1]}" -> "{p.scheduler}"'
        )


set_samplers()
