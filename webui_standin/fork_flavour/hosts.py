"""The fork flavours and what differs between them (docs/forks.md §1-§4; the rest is shared, see sampling.py).

| flavour     | forge_version.version | family | uc at CFG 1 | hires hook | post-CFG args            |
|-------------|-----------------------|--------|-------------|------------|--------------------------|
| forge       | 2.0.1v1.10.1          | 2      | None        | twice      | no cond_scale            |
| neo         | neo                   | 2      | None        | twice      | cond_scale               |
| classic     | classic               | 1      | encoded     | once       | cond_scale, uncond None* |
| classic-1.8 | classic               | 1      | encoded     | once       | same as classic          |
| reforge     | 1.0.0v2-v1.10.1RC     | 1      | encoded     | once       | cond_scale, uncond None* |

Skip early CFG (opt = the option skip_early_cond, 0.0 by default; done = evaluations done / expected):
forge, neo: opt > 0 and done <= opt; classic: 0 < done <= p.skip_early_cond; classic-1.8: 0 <= done <= opt (so
evaluation 0 is always skipped); reforge: step < opt, or opt != 0 and done <= opt.
(* when the uncond was not evaluated.) "family" 2 is the ``backend/`` API (Forge, Neo), 1 the ``ldm_patched`` +
``modules_forge.forge_sampler`` API (Classic, reForge main). NGMS (s_min_uncond) follows each fork's rule too. The
hires pass runs at ``p.hr_cfg`` (Forge, Neo, reForge; API default 1.0; reForge maps 0 to the CFG scale) or
``p.hr_cfg_scale`` (Classic; None is taken as the CFG scale, which its UI sends while the hires sampler options are
hidden). Classic >= 1.9 reads the per-job ``p.skip_early_cond`` (request value, else the option; the img2img/hires
options are not modelled); reForge has ``p.dynamic_clip_skip_sets`` / ``p.dynamic_clip_skip_schedule`` (None: its
dynamic Clip skip is not modelled). UniPC: in Forge and reForge a timestep sampler whose timesteps become real
sigmas; Classic and Neo run it as a k-diffusion sampler - modelled as the same timestep solver with the same
conversion, so the callback sees real sigmas and one evaluation per step, but the levels are the timestep grid's,
not the pass's k-diffusion schedule. Live previews: Classic's and Neo's default method pictures only the first
latent of a batch (``preview_first_latent_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modules import shared


def _forge_rule(denoiser, sigma, s_min_uncond) -> bool:
    """F ``sd_samplers_cfg_denoiser.py:190-197``, N :187-194 (recorded in the infotext like A1111)."""
    opts, recorded = shared.opts, denoiser.p.extra_generation_params
    early = opts.skip_early_cond
    if early > 0 and denoiser.step / denoiser.total_steps <= early:
        recorded["Skip Early CFG"] = early
        return True
    if (denoiser.step % 2 or opts.s_min_uncond_all) and s_min_uncond > 0 and sigma[0] < s_min_uncond:
        recorded["NGMS"] = s_min_uncond
        if opts.s_min_uncond_all:
            recorded["NGMS all steps"] = opts.s_min_uncond_all
        return True
    return False


def _classic_rule(denoiser, sigma, s_min_uncond) -> bool:
    """C >= 1.9 ``:151-153``: strict lower bounds, the per-job value."""
    done = denoiser.step / denoiser.total_steps
    return 0.0 < done <= (denoiser.p.skip_early_cond or 0.0) or 0.0 < float(sigma[0]) < s_min_uncond


def _classic_18_rule(denoiser, sigma, s_min_uncond) -> bool:
    """C <= 1.8: inclusive lower bounds, so evaluation 0 is skipped with the default 0.0."""
    done = denoiser.step / denoiser.total_steps
    return 0.0 <= done <= shared.opts.skip_early_cond or 0.0 <= float(sigma[0]) <= s_min_uncond


def _reforge_rule(denoiser, sigma, s_min_uncond) -> bool:
    """R ``:182-197``: NGMS from the option on even evaluations (or all), then skip early by count or fraction."""
    opts, recorded = shared.opts, denoiser.p.extra_generation_params
    floor = opts.s_min_uncond
    if floor > 0 and sigma[0] < floor and (denoiser.step % 2 == 0 or opts.s_min_uncond_all):
        recorded["NGMS"] = floor
        if opts.s_min_uncond_all:
            recorded["NGMS all steps"] = opts.s_min_uncond_all
        return True
    early = opts.skip_early_cond
    if denoiser.step < early:
        return True
    if early != 0 and denoiser.step / denoiser.total_steps <= early:
        recorded["Skip Early CFG"] = early
        return True
    return False


@dataclass(frozen=True)
class Host:
    """One fork flavour (see the module docstring for the table)."""

    name: str
    version: str
    family: int
    style: str
    """how a skipped uncond is handed on: "forge" (Forge, Neo), "classic", "reforge" (see sampling.py)"""
    no_uncond_at_cfg1: bool
    hires_hook_twice: bool
    post_cfg_has_cond_scale: bool
    post_cfg_uncond_is_evaluated: bool
    """post-CFG ``args["uncond"]``: the list actually evaluated (None when skipped) rather than the compiled one"""
    reads_x_sigma_back: bool
    hires_cfg_field: str
    rule: Any
    preview_first_latent_only: bool = False
    """the live-preview decode (``samples_to_images_tensor`` without an approximation) gives a picture of the first
    latent only with the fork's default method "RGB": Classic's ``sd_vae_rgb`` and Neo's ``cheap_approximation`` (also
    what Neo uses for "Full") take ``x0[0]`` (C ``modules/sd_vae_rgb.py``, N ``modules/sd_vae_approx.py:84-93``; seen in
    running Classic ``c813972d`` and Neo ``283cb2c4``, 2026-12-06). Forge's and reForge's take the whole batch."""

    def skips_uncond(self, denoiser, sigma, s_min_uncond) -> bool:
        """Whether skip-early CFG or NGMS drops the uncond of this evaluation."""
        return self.rule(denoiser, sigma, s_min_uncond)

    def hires_cfg(self, p) -> float:
        """The CFG scale of the hires pass."""
        value = getattr(p, self.hires_cfg_field)
        return p.cfg_scale if value is None or (self.style == "reforge" and value == 0) else value

    def encodes_uncond(self, p, hires: bool) -> bool:
        """False where the fork leaves ``p.uc`` / ``p.hr_uc`` None (CFG scale 1 in Forge and Neo)."""
        if not self.no_uncond_at_cfg1:
            return True
        return (self.hires_cfg(p) if hires else p.cfg_scale) != 1

    def add_fields(self, p, kwargs: dict) -> None:
        """The processing fields this fork adds (taken from the constructor's keyword arguments when given)."""
        fields: dict = {}
        if hasattr(p, "enable_hr"):
            fields[self.hires_cfg_field] = None if self.hires_cfg_field == "hr_cfg_scale" else 1.0
        if self.family == 2:  # Forge, Neo: the distilled CFG scale of each pass (their default 3.5)
            fields.update(distilled_cfg_scale=3.5, hr_distilled_cfg=3.5)
        if self.rule is _classic_rule:
            fields["skip_early_cond"] = None
        if self.style == "reforge":
            fields.update(dynamic_clip_skip_sets=None, dynamic_clip_skip_schedule=None)
        for name, default in fields.items():
            setattr(p, name, kwargs.pop(name, default))
        if self.rule is _classic_rule:
            p.skip_early_cond = p.skip_early_cond or shared.opts.skip_early_cond


def _host(name, version, family, style, rule, **differences) -> Host:
    settings = {
        "no_uncond_at_cfg1": family == 2,
        "hires_hook_twice": family == 2,
        "post_cfg_has_cond_scale": name != "forge",
        "post_cfg_uncond_is_evaluated": style == "reforge",
        "reads_x_sigma_back": style != "reforge",
        "hires_cfg_field": "hr_cfg_scale" if style == "classic" else "hr_cfg",
        **differences,
    }
    return Host(name=name, version=version, family=family, style=style, rule=rule, **settings)


HOSTS = {
    host.name: host
    for host in (
        _host("forge", "2.0.1v1.10.1", 2, "forge", _forge_rule),
        _host("neo", "neo", 2, "forge", _forge_rule, preview_first_latent_only=True),
        _host("classic", "classic", 1, "classic", _classic_rule, preview_first_latent_only=True),
        _host("classic-1.8", "classic", 1, "classic", _classic_18_rule, preview_first_latent_only=True),
        _host("reforge", "1.0.0v2-v1.10.1RC", 1, "reforge", _reforge_rule),
    )
}
