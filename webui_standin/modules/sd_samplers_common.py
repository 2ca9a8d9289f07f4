"""Stand-in for modules/sd_samplers_common.py (v1.10.1): what the k-diffusion and timestep samplers share.

Facts modelled: a sampler's registry entry (name, constructor, aliases, options; "second_order" samplers expect two
denoiser evaluations per step); how img2img turns steps and denoising strength into a schedule length and the
number of steps actually run; VAE decoding/encoding of latents; which samplers consume the "eta noise seed delta";
the per-step callback (``state.sampling_step`` = the callback's ``i``, interrupt by ``stop_at``); the refiner switch;
the substitution of k-diffusion's ``torch`` so that its ``randn_like`` draws from the per-seed ``p.rng``; the
collection of sampler keyword arguments (eta, sigma churn/tmin/tmax/noise) with their infotext entries.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import k_diffusion.sampling
import torch
from modules import devices, shared
from modules.script_callbacks import ExtraNoiseParams, extra_noise_callback
from modules.shared import opts, state


class SamplerData(NamedTuple):
    """A registered sampler (the WebUI's namedtuple "SamplerData")."""

    name: str
    constructor: Callable
    aliases: list
    options: dict

    def total_steps(self, steps: int) -> int:
        """Expected denoiser evaluations: twice the steps for samplers flagged "second_order"."""
        return 2 * steps if self.options.get("second_order", False) else steps


def setup_img2img_steps(p, steps: int | None = None) -> tuple[int, int]:
    """(length of the full schedule, t_enc) of an img2img pass; t_enc + 1 steps are run.

    By default the schedule has p.steps steps and int(strength * steps) of them run (strength capped at 0.999);
    with the "img2img_fix_steps" option or explicit ``steps`` exactly that many run, the schedule being stretched
    to int(steps / strength) (0 when the strength is 0).
    """
    strength = min(p.denoising_strength, 0.999)
    if not (opts.img2img_fix_steps or steps is not None):
        return p.steps, int(strength * p.steps)
    wanted = steps or p.steps
    schedule = int(wanted / strength) if p.denoising_strength > 0 else 0
    return schedule, wanted - 1


approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample: torch.Tensor, approximation: int | None = None, model=None) -> torch.Tensor:
    """Latents to images in [-1, 1] (only the full VAE decode exists here). Under a fork flavour whose live-preview
    method pictures the first latent only (Classic's and Neo's "RGB"), the live-preview call (no ``approximation``) does
    so."""
    flavour = getattr(sys.modules.get("fork_flavour"), "active", lambda: None)()
    if approximation is None and getattr(flavour, "preview_first_latent_only", False):
        sample = sample[:1]
    vae_owner = shared.sd_model if model is None else model
    with devices.without_autocast():
        return vae_owner.decode_first_stage(sample)


def decode_first_stage(model, x: torch.Tensor) -> torch.Tensor:
    return samples_to_images_tensor(x, 0, model)


def images_tensor_to_samples(image: torch.Tensor, approximation: int | None = None, model=None) -> torch.Tensor:
    """Images in [0, 1] to latents; a batch is encoded one image at a time."""
    vae_owner = shared.sd_model if model is None else model

    def encode(batch):
        return vae_owner.get_first_stage_encoding(vae_owner.encode_first_stage(batch))

    scaled = image.to(shared.device, dtype=devices.dtype_vae) * 2 - 1
    if len(scaled) <= 1:
        return encode(scaled)
    return torch.stack([encode(one[None])[0] for one in scaled])


def store_latent(decoded: torch.Tensor) -> None:
    """Keeps the preview latent in state (no live previews are rendered here)."""
    state.current_latent = decoded


def is_sampler_using_eta_noise_seed_delta(p) -> bool:
    """Whether the pass's sampler uses ENSD: flagged "uses_ensd" and its eta (the pass's, the sampler's, else the
    default: 0 for "default_eta_is_0" samplers, 1 otherwise) is not 0."""
    from modules import sd_samplers

    config = sd_samplers.find_sampler_config(p.sampler_name)
    candidates = [p.eta, p.sampler.eta if p.sampler is not None else None]
    if config is not None:
        candidates.append(0 if config.options.get("default_eta_is_0", False) else 1.0)
    eta = next((value for value in candidates if value is not None), None)
    return eta != 0 and config.options.get("uses_ensd", False)


class InterruptedException(BaseException):
    """Raised to stop sampling (a BaseException: not caught by 'except Exception')."""


def add_extra_noise(p, x, noise, xi, scale):
    """img2img's "Extra noise" option: lets scripts replace the noise (``extra_noise_callback``), then adds
    noise * option value * ``scale`` to the noised latent ``xi`` and records the option in the infotext."""
    if opts.img2img_extra_noise <= 0:
        return xi
    p.extra_generation_params["Extra noise"] = opts.img2img_extra_noise
    params = ExtraNoiseParams(noise, x, xi)
    extra_noise_callback(params)
    return xi + params.noise * opts.img2img_extra_noise * scale


def apply_refiner(cfg_denoiser, sigma=None) -> bool:
    """Switch to the refiner checkpoint once the pass has progressed far enough; True when it switched now.

    Facts modelled (v1.10.1): progress is the evaluation count over the total steps when "switch by sampling
    steps" is set (or no level is known), else 1 - (nearest discrete timestep of the level) / 1000; nothing
    happens before "Refiner switch at", without a refiner, or when it is loaded already; with hires fix the
    "hires_fix_refiner_pass" option limits it to one pass. The switch loads the refiner's weights (into the
    same object for the same architecture), records Refiner / Refiner switch at in the infotext, recomputes the
    pass's conditioning with the refiner and hands it to the sampler.
    """
    p = cfg_denoiser.p
    if opts.refiner_switch_by_sample_steps or sigma is None:
        progress = cfg_denoiser.step / cfg_denoiser.total_steps
        p.extra_generation_params["Refiner switch by sampling steps"] = True
    else:
        level = torch.max(sigma)
        table = getattr(cfg_denoiser.inner_model, "sigmas", None)
        nearest = level.to(dtype=int) if table is None else torch.argmin(torch.abs(table.to(level.device) - level))
        progress = (999 - nearest) / 1000
    switch_at = getattr(p, "refiner_switch_at", None)
    refiner = getattr(p, "refiner_checkpoint_info", None)
    if (switch_at is not None and progress < switch_at) or refiner is None:
        return False
    if shared.sd_model.sd_checkpoint_info == refiner:
        return False
    if getattr(p, "enable_hr", False):
        which = opts.hires_fix_refiner_pass
        if which != ("second pass" if p.is_hr_pass else "first pass") and which != "both passes":
            return False
        if which != "second pass":
            p.extra_generation_params["Hires refiner"] = which
    p.extra_generation_params["Refiner"] = refiner.short_title
    p.extra_generation_params["Refiner switch at"] = switch_at
    from modules import sd_models

    sd_models.reload_model_weights(info=refiner)
    p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


class TorchHijack:
    """Stands in for the ``torch`` module inside k-diffusion's sampling module: everything is torch's, except that
    ``randn_like`` returns the next noise of the pass's per-seed generator ``p.rng``."""

    def __init__(self, p) -> None:
        self.rng = p.rng

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.rng.next()

    def __getattr__(self, item: str) -> Any:
        try:
            return getattr(torch, item)
        except AttributeError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'") from None


# keyword arguments of k-diffusion samplers that the WebUI's options override, with their infotext labels
_SIGMA_PARAMETERS = (
    ("s_churn", "Sigma churn"),
    ("s_tmin", "Sigma tmin"),
    ("s_tmax", "Sigma tmax"),
    ("s_noise", "Sigma noise"),
)


class Sampler:
    """The state and plumbing shared by the k-diffusion and timestep samplers of one pass."""

    def __init__(self, funcname) -> None:
        self.funcname = funcname
        self.func = funcname
        self.config: SamplerData | None = None  # set by sd_samplers.create_sampler
        self.options: dict = {}
        self.extra_params: list[str] = []
        self.sampler_noises = None
        self.stop_at = None
        self.p = None
        self.model_wrap_cfg: Any = None
        self.sampler_extra_args: dict | None = None
        self.last_latent = None
        self.conditioning_key = shared.sd_model.model.conditioning_key
        # eta: the option it defaults to, its infotext label and the value that is not recorded
        self.eta = None
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.s_min_uncond = None
        # the defaults of k-diffusion's churn parameters (Karras et al.'s S_churn, S_tmin, S_tmax, S_noise)
        self.s_churn, self.s_tmin, self.s_tmax, self.s_noise = 0.0, 0.0, float("inf"), 1.0

    def callback_state(self, d: dict) -> None:
        """The per-step callback: the step index becomes ``state.sampling_step``; past ``stop_at`` it interrupts."""
        if self.stop_at is not None and d["i"] > self.stop_at:
            raise InterruptedException
        state.sampling_step = d["i"]
        shared.total_tqdm.update()

    def launch_sampling(self, steps: int, func):
        """Runs ``func`` with the denoiser told the step count (and the expected evaluations) and the state reset;
        an interrupt (or a RecursionError) ends the pass with the last latent instead of an error."""
        denoiser = self.model_wrap_cfg
        denoiser.steps, denoiser.total_steps = steps, self.config.total_steps(steps)
        state.sampling_steps, state.sampling_step = steps, 0
        try:
            return func()
        except InterruptedException:
            return self.last_latent
        except RecursionError:
            print("Encountered RecursionError during sampling, returning last latent.")
            return self.last_latent

    def number_of_needed_noises(self, p) -> int:
        return p.steps

    def _accepts(self, name: str) -> bool:
        return name in inspect.signature(self.func).parameters

    def initialize(self, p) -> dict:
        """Binds the pass to the CFG denoiser (mask, step counter from 0, image CFG scale), takes over k-diffusion's
        ``torch`` and returns the keyword arguments the sampler function accepts: eta (recorded when not the
        default) and the sigma parameters (options first, recorded and written to p when not the defaults)."""
        denoiser = self.model_wrap_cfg
        self.p = denoiser.p = p
        denoiser.mask = getattr(p, "mask", None)
        denoiser.nmask = getattr(p, "nmask", None)
        denoiser.step = 0
        denoiser.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.eta = getattr(opts, self.eta_option_field, 0.0) if p.eta is None else p.eta
        self.s_min_uncond = getattr(p, "s_min_uncond", 0.0)

        k_diffusion.sampling.torch = TorchHijack(p)

        kwargs = {name: getattr(p, name) for name in self.extra_params if hasattr(p, name) and self._accepts(name)}
        if self._accepts("eta"):
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            kwargs["eta"] = self.eta

        if self.extra_params:
            chosen = {name: getattr(opts, name, getattr(p, name)) for name, _ in _SIGMA_PARAMETERS}
            chosen["s_tmax"] = chosen["s_tmax"] or self.s_tmax  # 0 means no upper bound
            for name, label in _SIGMA_PARAMETERS:
                value = chosen[name]
                if name in kwargs and value != getattr(self, name):
                    kwargs[name] = value
                    setattr(p, name, value)
                    p.extra_generation_params[label] = value
        return kwargs

    def discards_penultimate_sigma(self, p) -> bool:
        """The sampler's "discard_next_to_last_sigma" flag, or the option forcing it (then recorded in the infotext)."""
        if self.config is not None and self.config.options.get("discard_next_to_last_sigma", False):
            return True
        if opts.always_discard_next_to_last_sigma:
            p.extra_generation_params["Discard penultimate sigma"] = True
            return True
        return False

    def run_sampler(self, p, x, steps: int, conditioning, unconditional_conditioning, image_conditioning, kwargs):
        """Calls the sampler function on ``x`` with the CFG denoiser's arguments, counting ``steps`` steps, and
        records the padding infotext afterwards."""
        self.sampler_extra_args = {
            "cond": conditioning,
            "image_cond": image_conditioning,
            "uncond": unconditional_conditioning,
            "cond_scale": p.cfg_scale,
            "s_min_uncond": self.s_min_uncond,
        }

        def call():
            args = self.sampler_extra_args
            return self.func(
                self.model_wrap_cfg, x, extra_args=args, disable=False, callback=self.callback_state, **kwargs
            )

        samples = self.launch_sampling(steps, call)
        self.add_infotext(p)
        return samples

    def create_noise_sampler(self, x, sigmas, p):
        """The SDE samplers' Brownian noise, seeded with the seeds of this batch (None when the
        "no_dpmpp_sde_batch_determinism" option asks for plain noise)."""
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        from k_diffusion.sampling import BrownianTreeNoiseSampler

        first = p.iteration * p.batch_size
        seeds = p.all_seeds[first : first + p.batch_size]
        return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seeds)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        raise NotImplementedError()

    def add_infotext(self, p) -> None:
        """Records whether the CFG denoiser padded cond/uncond during the pass."""
        denoiser = self.model_wrap_cfg
        for flag, label in (
            (denoiser.padded_cond_uncond, "Pad conds"),
            (denoiser.padded_cond_uncond_v0, "Pad conds v0"),
        ):
            if flag:
                p.extra_generation_params[label] = True
