"""Stand-in for modules/sd_samplers.py (v1.10.1)."""

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

all_samplers = [
    *sd_samplers_kdiffusion.samplers_data_k_diffusion,
    *sd_samplers_timesteps.samplers_data_timesteps,
    *sd_samplers_lcm.samplers_data_lcm,
]
all_samplers_map = {x.name: x for x in all_samplers}

samplers: list[sd_samplers_common.SamplerData] = []
samplers_for_img2img: list[sd_samplers_common.SamplerData] = []
samplers_map: dict[str, str] = {}
samplers_hidden: set[str] = set()


def find_sampler_config(name: str | None):  # mirrors sd_samplers.find_sampler_config
    if name is not None:
        config = all_samplers_map.get(name, None)
    else:
        config = all_samplers[0]
    return config


def create_sampler(name: str, model):
    """mirrors sd_samplers.create_sampler: a fresh sampler (and CFG denoiser) for every sampling pass."""
    config = find_sampler_config(name)
    assert config is not None, f"bad sampler name: {name}"
    if model.is_sdxl and config.options.get("no_sdxl", False):
        raise Exception(f"Sampler {config.name} is not supported for SDXL")
    sampler = config.constructor(model)
    sampler.config = config
    return sampler


def set_samplers() -> None:  # mirrors sd_samplers.set_samplers
    global samplers, samplers_for_img2img, samplers_hidden
    samplers_hidden = set(shared.opts.hide_samplers)
    samplers = all_samplers
    samplers_for_img2img = all_samplers
    samplers_map.clear()
    for sampler in all_samplers:
        samplers_map[sampler.name.lower()] = sampler.name
        for alias in sampler.aliases:
            samplers_map[alias.lower()] = sampler.name


def visible_sampler_names() -> list[str]:  # mirrors sd_samplers.visible_sampler_names
    return [x.name for x in samplers if x.name not in samplers_hidden]


def get_sampler_and_scheduler(sampler_name, scheduler_name, *, convert_automatic: bool = True):
    """mirrors sd_samplers.get_sampler_and_scheduler: also splits old names like 'DPM++ 2M Karras'."""
    default_scheduler = sd_schedulers.schedulers[0]
    found_scheduler = sd_schedulers.schedulers_map.get(scheduler_name, default_scheduler)
    name = sampler_name or ""
    label = found_scheduler.label
    sampler = all_samplers_map.get(name, None)
    if sampler is None:
        for scheduler in sd_schedulers.schedulers:
            name_options = [scheduler.label, scheduler.name, *(scheduler.aliases or [])]
            for name_option in name_options:
                if name.endswith(" " + name_option):
                    found_scheduler = scheduler
                    name = name[0 : -(len(name_option) + 1)]
                    break
        sampler = all_samplers_map.get(name, None)
        if sampler is None:
            name = sampler_name
        label = found_scheduler.label
    if convert_automatic and found_scheduler.name == "automatic" and sampler is not None:
        label = "Automatic"
    return name, label


def fix_p_invalid_sampler_and_scheduler(p) -> None:  # mirrors sd_samplers.fix_p_invalid_sampler_and_scheduler
    i_sampler_name, i_scheduler = p.sampler_name, p.scheduler
    p.sampler_name, p.scheduler = get_sampler_and_scheduler(p.sampler_name, p.scheduler, convert_automatic=False)
    if p.sampler_name != i_sampler_name or i_scheduler != p.scheduler:
        logging.warning(
            f'Sampler Scheduler autocorrection: "{i_sampler_name}" -> "{p.sampler_name}", '
            f'"{i_scheduler}" -> "{p.scheduler}"'
        )


set_samplers()
