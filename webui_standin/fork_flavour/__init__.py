"""Fork flavours of the stand-in: the contract Forge, Forge Neo, Forge Classic and reForge offer an extension.

``select(name)`` (called by ``harness.start(..., host=name)``) switches the running stand-in to a flavour, or back to
A1111 with "a1111". A flavour

- makes the fork's detection surface importable (docs/forks.md §1): ``modules_forge.forge_version`` with the
  fork's ``version``; Forge/Neo ("Forge 2" family): ``backend.sampling.sampling_function``,
  ``backend.sampling.condition``, ``backend.patcher.unet``; Classic/reForge ("Forge 1" family):
  ``ldm_patched.modules.samplers``, ``ldm_patched.modules.conds``, ``modules_forge.forge_sampler``,
  ``modules_forge.unet_patcher``. They live in ``sys.modules`` only while the flavour is active;
- gives every loaded model ``forge_objects`` (patcher.py) and makes processing reset its unet before each
  ``process_before_every_sampling`` (modules/processing.py, ``fork``);
- replaces the body of ``CFGDenoiser.forward`` with the fork's (sampling.py) and sets the class attribute
  ``classic_ddim_eps_estimation`` (True on the timestep samplers' denoiser).

Selecting "a1111" undoes all of it: the module entries, the hooks, the class attributes and the models' forge objects.
"""

from __future__ import annotations

import functools
import importlib.machinery
import sys
import types

from fork_flavour import conditions, hosts, patcher, sampling
from modules import processing, sd_samplers_cfg_denoiser, sd_samplers_timesteps

NAMES = ("a1111", *hosts.HOSTS)
_PACKAGES = {"modules_forge", "backend", "backend.sampling", "backend.patcher", "ldm_patched", "ldm_patched.modules"}
_installed: dict[str, object] = {}  # module name -> what sys.modules held before (None: nothing)
_active: list = [None]


def active() -> hosts.Host | None:
    """The selected fork flavour, None for A1111."""
    return _active[0]


def _module(name: str, package: bool = False, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        module.__path__ = []  # nothing else can be imported from it
    module.__dict__.update(attributes)
    return module


def _surface(host: hosts.Host) -> dict[str, dict]:
    """Module name -> its attributes (packages get an empty dict); the fork's detection surface."""
    modules: dict[str, dict] = {"modules_forge": {}, "modules_forge.forge_version": {"version": host.version}}
    if host.family == 2:
        condition = {
            "Condition": conditions.Condition,
            "ConditionCrossAttn": conditions.ConditionCrossAttn,
            "compile_conditions": conditions.compile_conditions,
            "compile_weighted_conditions": conditions.compile_weighted_conditions,
        }
        modules.update(
            {
                "backend": {},
                "backend.sampling": {},
                "backend.sampling.condition": condition,
                "backend.sampling.sampling_function": {
                    **condition,
                    "calc_cond_uncond_batch": sampling.calc_cond_uncond_batch,
                },
                "backend.patcher": {},
                "backend.patcher.unet": {"UnetPatcher": patcher.UnetPatcher},
            }
        )
        return modules
    conds = {"CONDRegular": conditions.Condition, "CONDCrossAttn": conditions.ConditionCrossAttn}
    samplers = {"calc_cond_uncond_batch": sampling.calc_cond_uncond_batch}
    if host.style == "reforge":
        samplers["calc_cond_batch"] = sampling.calc_cond_batch
    modules.update(
        {
            "ldm_patched": {},
            "ldm_patched.modules": {},
            "ldm_patched.modules.conds": conds,
            "ldm_patched.modules.samplers": samplers,
            "modules_forge.forge_sampler": {
                **conds,
                "cond_from_a1111_to_patched_ldm": conditions.forge1_conditions,
                "cond_from_a1111_to_patched_ldm_weighted": conditions.forge1_weighted_conditions,
            },
            "modules_forge.unet_patcher": {"UnetPatcher": patcher.UnetPatcher},
        }
    )
    return modules


def _uninstall() -> None:
    for module_name, previous in reversed(list(_installed.items())):
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
    _installed.clear()
    processing.fork = None
    sd_samplers_cfg_denoiser.fork_forward = None
    for cls in (sd_samplers_cfg_denoiser.CFGDenoiser, sd_samplers_timesteps.CFGDenoiserTimesteps):
        if "classic_ddim_eps_estimation" in vars(cls):
            delattr(cls, "classic_ddim_eps_estimation")
    patcher.detach_all()
    _active[0] = None


def add_module(module: types.ModuleType) -> None:
    """Put one more fork module in ``sys.modules`` until the flavour is left (fake engines' module globals)."""
    _installed.setdefault(module.__name__, sys.modules.get(module.__name__))
    sys.modules[module.__name__] = module


def select(name: str) -> hosts.Host | None:
    """Switch to the flavour ``name`` (one of NAMES); returns it (None for "a1111")."""
    if name not in NAMES:
        raise ValueError(f"unknown host {name!r}; choose one of {NAMES}")
    _uninstall()
    if name == "a1111":
        return None
    host = hosts.HOSTS[name]
    modules = {
        module_name: _module(module_name, module_name in _PACKAGES, **attributes)
        for module_name, attributes in _surface(host).items()
    }
    for module_name, module in modules.items():
        parent, _, child = module_name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
        _installed[module_name] = sys.modules.get(module_name)
        sys.modules[module_name] = module
    processing.fork = host
    sd_samplers_cfg_denoiser.fork_forward = functools.partial(sampling.fork_forward, host)
    sd_samplers_cfg_denoiser.CFGDenoiser.classic_ddim_eps_estimation = False
    sd_samplers_timesteps.CFGDenoiserTimesteps.classic_ddim_eps_estimation = True
    _active[0] = host
    return host
