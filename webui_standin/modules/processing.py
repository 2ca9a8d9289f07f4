"""Stand-in for modules/processing.py (v1.10.1): processing objects, process_images and infotext creation."""

from __future__ import annotations

import contextlib
import json
import random
import sys
from typing import Any

import modules.shared as shared
import numpy as np
import torch
from modules import (
    devices,
    errors,
    extra_networks,
    infotext_utils,
    masking,
    prompt_parser,
    rng,
    sd_models,
    sd_samplers,
    sd_samplers_common,
)
from modules.rng import slerp  # noqa: F401  (re-exported like the WebUI)
from modules.sd_samplers_common import approximation_indexes, decode_first_stage, images_tensor_to_samples
from modules.shared import opts, state

opt_C = 4
opt_f = 8


def latent_scale_factor(model=None) -> int:
    """Stand-in helper: pixels per latent cell (8 for SD; a model may set `latent_scale_factor`, e.g. 1 for a
    pixel-space toy model)."""
    model = model if model is not None else shared.sd_model
    return int(getattr(model, "latent_scale_factor", opt_f))


def program_version() -> str:  # mirrors launch.git_tag/program_version
    return "v1.10.1"


def get_fixed_seed(seed):  # mirrors processing.get_fixed_seed
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p) -> None:  # mirrors processing.fix_seed
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


class DecodedSamples(list):
    """mirrors processing.DecodedSamples: a list of decoded images flagged already_decoded."""

    already_decoded = True


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False) -> DecodedSamples:
    """mirrors processing.decode_latent_batch: decodes item by item; returns [-1, 1] image tensors."""
    samples = DecodedSamples()
    for i in range(batch.shape[0]):
        sample = decode_first_stage(model, batch[i : i + 1])[0]
        if target_device is not None:
            sample = sample.to(target_device)
        samples.append(sample)
    return samples


def uses_inpainting_unet(sd_model) -> bool:
    """Stand-in helper: whether the UNet takes the 5 extra input channels (mask + masked-image latent): SD1/SD2
    inpainting checkpoints (conditioning key "hybrid" or "concat") and SDXL inpainting ones."""
    return sd_model.model.conditioning_key in {"hybrid", "concat"} or bool(getattr(sd_model, "is_sdxl_inpaint", False))


def txt2img_image_conditioning(sd_model, x, width, height):
    """mirrors processing.txt2img_image_conditioning: for an inpainting UNet the whole picture is "masked": a mask
    channel of ones in front of the latent of a uniform mid-grey width x height image; other models get a
    placeholder of zeros [B, 5, 1, 1] (only its batch size matters)."""
    if not uses_inpainting_unet(sd_model):
        return x.new_zeros(x.shape[0], 5, 1, 1, dtype=x.dtype, device=x.device)
    grey = torch.full((x.shape[0], 3, height, width), 0.5, device=x.device)
    grey_latent = images_tensor_to_samples(grey, approximation_indexes.get(opts.sd_vae_encode_method), sd_model)
    ones = torch.ones_like(grey_latent[:, :1])
    return torch.cat([ones, grey_latent], dim=1).to(x.dtype)


def create_random_tensors(
    shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0, p=None
):
    """mirrors processing.create_random_tensors: each image's first noise from its own seed."""
    g = rng.ImageRNG(
        shape,
        seeds,
        subseeds=subseeds,
        subseed_strength=subseed_strength,
        seed_resize_from_h=seed_resize_from_h,
        seed_resize_from_w=seed_resize_from_w,
    )
    return g.next()


def create_binary_mask(image, round=True):
    """mirrors processing.create_binary_mask: a mask image whose alpha channel is not fully opaque is read from its
    alpha (thresholded at 128 when `round`), any other from its grey level. Stand-in: PIL images, uint8 arrays and
    tensors ([H, W], [1, H, W], [3, H, W] or [4, H, W] in [0, 1]) are accepted; returns an L image (uint8 array)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 3 and t.shape[0] == 4 and bool((t[3] < 1).any()):
            alpha = t[3]
            return masking.to_l_image((alpha * 255 > 128).float() if round else alpha)
        if t.ndim == 3 and t.shape[0] >= 3:
            t = 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]  # ITU-R 601 luma, as PIL's "L" conversion
        return masking.to_l_image(masking.as_mask_tensor(t))
    if getattr(image, "mode", None) == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = np.array(image.getchannel("A"))
        return np.where(alpha > 128, 255, 0).astype(np.uint8) if round else alpha
    if hasattr(image, "convert"):
        return np.array(image.convert("L"))
    return masking.to_l_image(masking.as_mask_tensor(image))


def resize_plane(t: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Stand-in helper (for images.resize_image): an image [C, H, W] or mask [H, W] resampled to width x height."""
    if tuple(t.shape[-2:]) == (height, width):
        return t
    batch = t[None] if t.ndim == 3 else t[None, None]
    out = torch.nn.functional.interpolate(batch.float(), size=(height, width), mode="bilinear", antialias=True)
    return out[0] if t.ndim == 3 else out[0, 0]


def resize_l_image(mask, width: int, height: int) -> np.ndarray:
    """Stand-in helper: an L image (uint8 array) resampled to width x height (still 8-bit)."""
    return masking.to_l_image(resize_plane(masking.as_mask_tensor(mask), width, height).clamp(0, 1))


def uncrop(image: torch.Tensor, dest_size, paste_loc) -> torch.Tensor:
    """mirrors processing.uncrop: the sampled crop ([3, h, w]) scaled back to the crop box and placed on a transparent
    canvas of dest_size (width, height); returns RGBA [4, H, W] (straight alpha)."""
    x, y, w, h = paste_loc
    canvas = torch.zeros(4, dest_size[1], dest_size[0], dtype=image.dtype)
    canvas[:3, y : y + h, x : x + w] = resize_plane(image, w, h)
    canvas[3, y : y + h, x : x + w] = 1.0
    return canvas


def apply_overlay(image: torch.Tensor, paste_loc, overlay):
    """mirrors processing.apply_overlay: (final image, image before compositing). The overlay (RGBA [4, H, W],
    straight alpha: the original where it is kept) is laid over the sample, which is first put back into the full
    picture when only the masked area was sampled (paste_loc). Images are [3, H, W] tensors in [0, 1]."""
    if overlay is None:
        return image, image.clone()
    if paste_loc is not None:
        base = uncrop(image, (overlay.shape[2], overlay.shape[1]), paste_loc)
    else:
        base = torch.cat([image, torch.ones_like(image[:1])])
    original_denoised_image = base.clone()
    top_alpha, base_alpha = overlay[3:], base[3:]
    alpha = top_alpha + base_alpha * (1 - top_alpha)
    rgb = (overlay[:3] * top_alpha + base[:3] * base_alpha * (1 - top_alpha)) / alpha.clamp(min=1e-8)
    return torch.where(alpha > 0, rgb, torch.zeros_like(rgb)), original_denoised_image


def composite_over_original(p, index: int, image: torch.Tensor) -> torch.Tensor:
    """The part of process_images_inner (v1.10.1) after postprocess_image: when inpainting, the original is laid back
    over what was not repainted (option "Overlay original for inpaint"), the crop of "only masked" put back in place.
    Scripts may swap mask and overlay first (postprocess_maskoverlay) and see the composite after
    (postprocess_image_after_composite)."""
    from modules import scripts

    overlays = getattr(p, "overlay_images", None) or []
    overlay = overlays[index] if opts.overlay_inpaint and index < len(overlays) else None
    hook = scripts.PostProcessMaskOverlayArgs(index, getattr(p, "mask_for_overlay", None), overlay)
    if p.scripts is not None:
        p.scripts.postprocess_maskoverlay(p, hook)
    composite, _before_overlay = apply_overlay(image, p.paste_to, hook.overlay_image)
    after = scripts.PostprocessImageArgs(composite)
    if p.scripts is not None:
        p.scripts.postprocess_image_after_composite(p, after)
    return after.image


def create_infotext(
    p,
    all_prompts,
    all_seeds,
    all_subseeds,
    comments=None,
    iteration=0,
    position_in_batch=0,
    use_main_prompt=False,
    index=None,
    all_negative_prompts=None,
) -> str:
    """mirrors processing.create_infotext: 'prompt\\nNegative prompt: ...\\nKey: value, ...'; list values are
    indexed by image, callables are called with the function's locals, None values are left out, values are quoted
    with infotext_utils.quote."""
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size

    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts

    clip_skip = getattr(p, "clip_skip", opts.CLIP_stop_at_last_layers)
    enable_hr = getattr(p, "enable_hr", False)
    token_merging_ratio = p.get_token_merging_ratio()
    token_merging_ratio_hr = p.get_token_merging_ratio(for_hr=True)

    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]

    uses_ensd = opts.eta_noise_seed_delta != 0
    if uses_ensd:
        uses_ensd = sd_samplers_common.is_sampler_using_eta_noise_seed_delta(p)

    generation_params: dict[str, Any] = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "CFG scale": p.cfg_scale,
        "Image CFG scale": getattr(p, "image_cfg_scale", None),
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Face restoration": opts.face_restoration_model if p.restore_faces else None,
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash if opts.add_model_hash_to_info else None,
        "Model": p.sd_model_name if opts.add_model_name_to_info else None,
        "Variation seed": (
            None if p.subseed_strength == 0 else (p.all_subseeds[0] if use_main_prompt else all_subseeds[index])
        ),
        "Variation seed strength": (None if p.subseed_strength == 0 else p.subseed_strength),
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "Conditional mask weight": (
            getattr(p, "inpainting_mask_weight", opts.inpainting_mask_weight)
            if p.is_using_inpainting_conditioning
            else None
        ),
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": opts.eta_noise_seed_delta if uses_ensd else None,
        "Token merging ratio": None if token_merging_ratio == 0 else token_merging_ratio,
        "Token merging ratio hr": None if not enable_hr or token_merging_ratio_hr == 0 else token_merging_ratio_hr,
        "Init image hash": getattr(p, "init_img_hash", None),
        "RNG": opts.randn_source if opts.randn_source != "GPU" else None,
        "Tiling": "True" if p.tiling else None,
        **p.extra_generation_params,
        "Version": program_version() if opts.add_version_to_infotext else None,
        "User": p.user if opts.add_user_name_to_info else None,
    }

    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None

    generation_params_text = ", ".join(
        [k if k == v else f"{k}: {infotext_utils.quote(v)}" for k, v in generation_params.items() if v is not None]
    )

    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""

    return f"{prompt_text}{negative_prompt_text}\n{generation_params_text}".strip()


class StableDiffusionProcessing:
    """mirrors processing.StableDiffusionProcessing (the dataclass fields, as keyword arguments)."""

    cached_uc: list = [None, None]
    cached_c: list = [None, None]

    def __init__(
        self,
        sd_model=None,
        outpath_samples=None,
        outpath_grids=None,
        prompt: str | list = "",
        prompt_for_display=None,
        negative_prompt: str | list = "",
        styles=None,
        seed: int = -1,
        subseed: int = -1,
        subseed_strength: float = 0,
        seed_resize_from_h: int = -1,
        seed_resize_from_w: int = -1,
        seed_enable_extras: bool = True,
        sampler_name=None,
        scheduler=None,
        batch_size: int = 1,
        n_iter: int = 1,
        steps: int = 50,
        cfg_scale: float = 7.0,
        width: int = 512,
        height: int = 512,
        restore_faces=None,
        tiling=None,
        do_not_save_samples: bool = False,
        do_not_save_grid: bool = False,
        extra_generation_params=None,
        overlay_images=None,
        eta=None,
        do_not_reload_embeddings: bool = False,
        denoising_strength=None,
        ddim_discretize=None,
        s_min_uncond=None,
        s_churn=None,
        s_tmax=None,
        s_tmin=None,
        s_noise=None,
        override_settings=None,
        override_settings_restore_afterwards: bool = True,
        sampler_index=None,
        refiner_checkpoint=None,
        refiner_switch_at=None,
        token_merging_ratio: float = 0,
        token_merging_ratio_hr: float = 0,
        disable_extra_networks: bool = False,
        firstpass_image=None,
        **kwargs: Any,
    ) -> None:
        self.sd_model = sd_model
        self.outpath_samples = outpath_samples
        self.outpath_grids = outpath_grids
        self.prompt = prompt
        self.prompt_for_display = prompt_for_display
        self.negative_prompt = negative_prompt
        self.styles = styles
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.seed_enable_extras = seed_enable_extras
        self.sampler_name = sampler_name
        self.scheduler = scheduler
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.hr_checkpoint_name = None
        self.cfg_scale = cfg_scale
        self.width = width
        self.height = height
        self.restore_faces = restore_faces
        self.tiling = tiling
        self.do_not_save_samples = do_not_save_samples
        self.do_not_save_grid = do_not_save_grid
        self.extra_generation_params = extra_generation_params
        self.overlay_images = overlay_images
        self.eta = eta
        self.do_not_reload_embeddings = do_not_reload_embeddings
        self.denoising_strength = denoising_strength
        self.ddim_discretize = ddim_discretize
        self.s_min_uncond = s_min_uncond
        self.s_churn = s_churn
        self.s_tmax = s_tmax
        self.s_tmin = s_tmin
        self.s_noise = s_noise
        self.override_settings = override_settings
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.sampler_index = sampler_index
        self.refiner_checkpoint = refiner_checkpoint
        self.refiner_switch_at = refiner_switch_at
        self.token_merging_ratio = token_merging_ratio
        self.token_merging_ratio_hr = token_merging_ratio_hr
        self.disable_extra_networks = disable_extra_networks
        self.firstpass_image = firstpass_image

        self.scripts_value = None
        self.script_args_value: Any = None
        self.scripts_setup_complete = False
        self.comments: dict = {}
        self.sampler = None
        self.is_using_inpainting_conditioning = False
        self.paste_to = None
        self.is_hr_pass = False
        self.c = None
        self.uc = None
        self.rng: rng.ImageRNG | None = None
        self.step_multiplier = 1
        self.color_corrections = None
        self.all_prompts: list[str] = []
        self.all_negative_prompts: list[str] = []
        self.all_seeds: list[int] = []
        self.all_subseeds: list[int] = []
        self.iteration = 0
        self.main_prompt = None
        self.main_negative_prompt = None
        self.prompts: list[str] = []
        self.negative_prompts: list[str] = []
        self.seeds: list[int] = []
        self.subseeds: list[int] = []
        self.extra_network_data: dict = {}
        self.user = None
        self.sd_model_name = None
        self.sd_model_hash = None
        self.sd_vae_name = None
        self.sd_vae_hash = None
        self.is_api = False
        self.batch_index = 0
        self.firstpass_steps = steps
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__post_init__()

    def __post_init__(self) -> None:  # mirrors StableDiffusionProcessing.__post_init__
        if self.sampler_index is not None:
            print(
                "sampler_index argument for StableDiffusionProcessing does not do anything; use sampler_name",
                file=sys.stderr,
            )
        self.comments = {}
        if self.styles is None:
            self.styles = []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.refiner_checkpoint_info = None
        if not self.seed_enable_extras:
            self.subseed = -1
            self.subseed_strength = 0
            self.seed_resize_from_h = 0
            self.seed_resize_from_w = 0
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c

    @property
    def scripts(self):  # mirrors StableDiffusionProcessing.scripts (setting it may run scripts' setup())
        return self.scripts_value

    @scripts.setter
    def scripts(self, value) -> None:
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):  # mirrors StableDiffusionProcessing.script_args
        return self.script_args_value

    @script_args.setter
    def script_args(self, value) -> None:
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self) -> None:  # mirrors StableDiffusionProcessing.setup_scripts
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text: str) -> None:
        self.comments[text] = 1

    def txt2img_image_conditioning(self, x, width=None, height=None):
        """mirrors StableDiffusionProcessing.txt2img_image_conditioning."""
        self.is_using_inpainting_conditioning = self.sd_model.model.conditioning_key in {"hybrid", "concat"}
        return txt2img_image_conditioning(self.sd_model, x, width or self.width, height or self.height)

    def inpainting_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        """mirrors StableDiffusionProcessing.inpainting_image_conditioning: the UNet's 5 extra channels, [B, 5, h, w]:
        the mask (1 = repaint) scaled to the latent size, then the latent of the source image ([-1, 1]) with the masked
        part moved towards 0 by the "inpainting_mask_weight" (1: removed, 0: kept). A tensor mask is used as given; an
        image mask ([0, 255]) is scaled to [0, 1] and, with round_image_mask, rounded to 0/1. No mask: all 1."""
        self.is_using_inpainting_conditioning = True
        if image_mask is None:
            mask = source_image.new_ones(1, 1, *source_image.shape[-2:])
        elif torch.is_tensor(image_mask):
            mask = image_mask
        else:
            mask = masking.as_mask_tensor(image_mask)[None, None]
            if round_image_mask:
                mask = torch.round(mask)
        mask = mask.to(device=source_image.device, dtype=source_image.dtype)
        weight = getattr(self, "inpainting_mask_weight", opts.inpainting_mask_weight)
        masked_image = source_image * (1.0 - weight * mask)  # lerp(source, source * (1 - mask), weight)
        masked_latent = self.sd_model.get_first_stage_encoding(self.sd_model.encode_first_stage(masked_image))
        mask = torch.nn.functional.interpolate(mask, size=latent_image.shape[-2:])  # nearest
        mask = mask.expand(masked_latent.shape[0], -1, -1, -1)
        return torch.cat([mask, masked_latent], dim=1).to(shared.device)

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        """mirrors StableDiffusionProcessing.img2img_image_conditioning (no depth, edit or unCLIP models here): the
        inpainting conditioning for an inpainting UNet, else the [B, 5, 1, 1] placeholder."""
        if self.sampler.conditioning_key in {"hybrid", "concat"}:
            return self.inpainting_image_conditioning(source_image, latent_image, image_mask, round_image_mask)
        if getattr(self.sd_model, "is_sdxl_inpaint", False):
            return self.inpainting_image_conditioning(source_image, latent_image, image_mask=image_mask)
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self) -> None:  # mirrors StableDiffusionProcessing.close
        self.sampler = None
        self.c = None
        self.uc = None
        if not opts.persistent_cond_cache:
            StableDiffusionProcessing.cached_c = [None, None]
            StableDiffusionProcessing.cached_uc = [None, None]

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        if for_hr:
            return (
                self.token_merging_ratio_hr
                or opts.token_merging_ratio_hr
                or self.token_merging_ratio
                or opts.token_merging_ratio
            )
        return self.token_merging_ratio or opts.token_merging_ratio

    def setup_prompts(self) -> None:  # mirrors StableDiffusionProcessing.setup_prompts
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]

        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)

        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(
                f"Received a different number of prompts ({len(self.all_prompts)}) and negative "
                f"prompts ({len(self.all_negative_prompts)})"
            )

        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [
            shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles) for x in self.all_negative_prompts
        ]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def cached_params(self, required_prompts, steps, extra_network_data, hires_steps=None, use_old_scheduling=False):
        """mirrors StableDiffusionProcessing.cached_params: the cache key of a cond computation."""
        return (
            required_prompts,
            steps,
            hires_steps,
            use_old_scheduling,
            opts.CLIP_stop_at_last_layers,
            getattr(shared.sd_model, "sd_checkpoint_info", None),
            id(shared.sd_model),
            repr(extra_network_data),
            opts.sdxl_crop_left,
            opts.sdxl_crop_top,
            self.width,
            self.height,
            opts.emphasis,
        )

    def get_conds_with_caching(self, function, required_prompts, steps, caches, extra_network_data, hires_steps=None):
        """mirrors StableDiffusionProcessing.get_conds_with_caching: reuses a cond from any of `caches` (class-level,
        shared between processing objects) when the parameters match."""
        if shared.opts.use_old_scheduling:
            old_schedules = prompt_parser.get_learned_conditioning_prompt_schedules(
                required_prompts, steps, hires_steps, False
            )
            new_schedules = prompt_parser.get_learned_conditioning_prompt_schedules(
                required_prompts, steps, hires_steps, True
            )
            if old_schedules != new_schedules:
                self.extra_generation_params["Old prompt editing timelines"] = True

        cached_params = self.cached_params(
            required_prompts, steps, extra_network_data, hires_steps, shared.opts.use_old_scheduling
        )
        for cache in caches:
            if cache[0] is not None and cached_params == cache[0]:
                return cache[1]
        cache = caches[0]
        with devices.autocast():
            cache[1] = function(shared.sd_model, required_prompts, steps, hires_steps, shared.opts.use_old_scheduling)
        cache[0] = cached_params
        return cache[1]

    def setup_conds(self) -> None:
        """mirrors StableDiffusionProcessing.setup_conds: c (multicond) and uc (negative, is_negative_prompt=True),
        both scheduled over the sampler's total_steps (doubled for second-order samplers)."""
        prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
        negative_prompts = prompt_parser.SdConditioning(
            self.negative_prompts, width=self.width, height=self.height, is_negative_prompt=True
        )

        sampler_config = sd_samplers.find_sampler_config(self.sampler_name)
        total_steps = sampler_config.total_steps(self.steps) if sampler_config else self.steps
        self.step_multiplier = total_steps // self.steps
        self.firstpass_steps = total_steps

        self.uc = self.get_conds_with_caching(
            prompt_parser.get_learned_conditioning,
            negative_prompts,
            total_steps,
            [self.cached_uc],
            self.extra_network_data,
        )
        self.c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning,
            prompts,
            total_steps,
            [self.cached_c],
            self.extra_network_data,
        )

    def get_conds(self):  # mirrors StableDiffusionProcessing.get_conds
        return self.c, self.uc

    def parse_extra_network_prompts(self):  # LoRA tags leave the prompts (see modules/extra_networks.py)
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)
        return self.extra_network_data

    def fill_fields_from_opts(self) -> None:  # mirrors StableDiffusionProcessing.fill_fields_from_opts
        self.s_min_uncond = self.s_min_uncond if self.s_min_uncond is not None else opts.s_min_uncond
        self.s_churn = self.s_churn if self.s_churn is not None else opts.s_churn
        self.s_tmin = self.s_tmin if self.s_tmin is not None else opts.s_tmin
        self.s_tmax = (self.s_tmax if self.s_tmax is not None else opts.s_tmax) or float("inf")
        self.s_noise = self.s_noise if self.s_noise is not None else opts.s_noise


class Processed:
    """mirrors processing.Processed"""

    def __init__(
        self,
        p: StableDiffusionProcessing,
        images_list,
        seed=-1,
        info="",
        subseed=None,
        all_prompts=None,
        all_negative_prompts=None,
        all_seeds=None,
        all_subseeds=None,
        index_of_first_image=0,
        infotexts=None,
        comments="",
    ) -> None:
        self.images = images_list
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = p.subseed_strength
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.restore_faces = p.restore_faces
        self.face_restoration_model = opts.face_restoration_model if p.restore_faces else None
        self.sd_model_name = p.sd_model_name
        self.sd_model_hash = p.sd_model_hash
        self.seed_resize_from_w = p.seed_resize_from_w
        self.seed_resize_from_h = p.seed_resize_from_h
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.styles = p.styles
        self.job_timestamp = state.job_timestamp
        self.clip_skip = opts.CLIP_stop_at_last_layers
        self.token_merging_ratio = p.token_merging_ratio
        self.token_merging_ratio_hr = p.token_merging_ratio_hr
        self.eta = p.eta
        self.s_churn = p.s_churn
        self.s_tmin = p.s_tmin
        self.s_tmax = p.s_tmax
        self.s_noise = p.s_noise
        self.s_min_uncond = p.s_min_uncond
        self.sampler_noise_scheduler_override = p.sampler_noise_scheduler_override
        self.prompt = self.prompt if not isinstance(self.prompt, list) else self.prompt[0]
        self.negative_prompt = (
            self.negative_prompt if not isinstance(self.negative_prompt, list) else self.negative_prompt[0]
        )
        self.seed = int(self.seed if not isinstance(self.seed, list) else self.seed[0]) if self.seed is not None else -1
        self.subseed = (
            int(self.subseed if not isinstance(self.subseed, list) else self.subseed[0])
            if self.subseed is not None
            else -1
        )
        self.is_using_inpainting_conditioning = p.is_using_inpainting_conditioning
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)
        self.version = program_version()

    def js(self) -> str:  # mirrors Processed.js
        obj = {
            "prompt": self.all_prompts[0],
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0],
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.subseed,
            "all_subseeds": self.all_subseeds,
            "width": self.width,
            "height": self.height,
            "sampler_name": self.sampler_name,
            "cfg_scale": self.cfg_scale,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "extra_generation_params": {k: v for k, v in self.extra_generation_params.items() if not callable(v)},
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "version": self.version,
        }
        return json.dumps(obj, default=lambda o: None)

    def infotext(self, p: StableDiffusionProcessing, index: int) -> str:  # mirrors Processed.infotext
        return create_infotext(
            p,
            self.all_prompts,
            self.all_seeds,
            self.all_subseeds,
            comments=[],
            position_in_batch=index % self.batch_size,
            iteration=index // self.batch_size,
        )

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return self.token_merging_ratio_hr if for_hr else self.token_merging_ratio


def process_images(p: StableDiffusionProcessing) -> Processed:
    """mirrors processing.process_images: before_process hooks, override_settings applied (and restored afterwards),
    sampler/scheduler name fix-up, then process_images_inner."""
    if p.scripts is not None:
        p.scripts.before_process(p)

    stored_opts = {
        k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings.keys() if k in opts.data
    }
    try:
        p.override_settings.pop("sd_model_checkpoint", None)  # the stand-in has a single loaded model
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)

        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        sd_models.reload_model_weights()  # back to the selected checkpoint (after a refiner run, say)

        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
    return res


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    """mirrors processing.process_images_inner: seeds and prompts, scripts.process, then per batch iteration:
    before_process_batch / process_batch hooks, conds, sampling (p.sample), decoding, postprocess hooks,
    infotexts; finally scripts.postprocess. An exception propagates (postprocess is then not called); an
    interrupt makes the sampler return its last latent and stops further iterations."""
    if isinstance(p.prompt, list):
        assert len(p.prompt) > 0
    else:
        assert p.prompt is not None

    devices.torch_gc()

    if p.refiner_checkpoint not in (None, "", "None", "none"):
        p.refiner_checkpoint_info = sd_models.get_closet_checkpoint_match(p.refiner_checkpoint)
        if p.refiner_checkpoint_info is None:
            raise Exception(f"Could not find checkpoint with name {p.refiner_checkpoint}")

    seed = get_fixed_seed(p.seed)
    subseed = get_fixed_seed(p.subseed)

    if p.restore_faces is None:
        p.restore_faces = opts.face_restoration
    if p.tiling is None:
        p.tiling = opts.tiling

    info = getattr(shared.sd_model, "sd_checkpoint_info", None)
    p.sd_model_name = getattr(info, "name_for_extra", None) or getattr(info, "model_name", None)
    p.sd_model_hash = getattr(shared.sd_model, "sd_model_hash", None)
    p.sd_vae_name = None
    p.sd_vae_hash = None

    p.fill_fields_from_opts()
    p.setup_prompts()

    if isinstance(seed, list):
        p.all_seeds = seed
    else:
        p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]

    if isinstance(subseed, list):
        p.all_subseeds = subseed
    else:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts = []
    output_images = []

    ema_scope = getattr(p.sd_model, "ema_scope", None) or contextlib.nullcontext
    with torch.no_grad(), ema_scope():
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)

        if state.job_count == -1:
            state.job_count = p.n_iter

        for n in range(p.n_iter):
            p.iteration = n

            if state.skipped:
                state.skipped = False

            if state.interrupted or state.stopping_generation:
                break

            p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size : (n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size : (n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size : (n + 1) * p.batch_size]

            latent_channels = getattr(shared.sd_model, "latent_channels", opt_C)
            f = latent_scale_factor()
            p.rng = rng.ImageRNG(
                (latent_channels, p.height // f, p.width // f),
                p.seeds,
                subseeds=p.subseeds,
                subseed_strength=p.subseed_strength,
                seed_resize_from_h=p.seed_resize_from_h,
                seed_resize_from_w=p.seed_resize_from_w,
            )

            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

            if len(p.prompts) == 0:
                break

            p.parse_extra_network_prompts()

            if not p.disable_extra_networks:
                extra_networks.activate(p, p.extra_network_data)

            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

            p.setup_conds()

            if n == 0:  # the WebUI writes params.txt here (creating the infotext once more)
                Processed(p, []).infotext(p, 0)

            if p.n_iter > 1:
                shared.state.job = f"Batch {n + 1} out of {p.n_iter}"

            samples_ddim = p.sample(
                conditioning=p.c,
                unconditional_conditioning=p.uc,
                seeds=p.seeds,
                subseeds=p.subseeds,
                subseed_strength=p.subseed_strength,
                prompts=p.prompts,
            )

            if p.scripts is not None:
                from modules import scripts

                ps = scripts.PostSampleArgs(samples_ddim)
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples

            if getattr(samples_ddim, "already_decoded", False):
                x_samples_ddim = samples_ddim
            else:
                x_samples_ddim = decode_latent_batch(
                    p.sd_model, samples_ddim, target_device=devices.cpu, check_for_nans=True
                )

            x_samples_ddim = torch.stack(x_samples_ddim).float()
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)

            del samples_ddim

            state.nextjob()

            if p.scripts is not None:
                from modules import scripts

                p.scripts.postprocess_batch(p, x_samples_ddim, batch_number=n)

                p.prompts = p.all_prompts[n * p.batch_size : (n + 1) * p.batch_size]
                p.negative_prompts = p.all_negative_prompts[n * p.batch_size : (n + 1) * p.batch_size]

                batch_params = scripts.PostprocessBatchListArgs(list(x_samples_ddim))
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                x_samples_ddim = batch_params.images

            def infotext(index=0, use_main_prompt=False):
                return create_infotext(
                    p,
                    p.prompts,
                    p.seeds,
                    p.subseeds,
                    use_main_prompt=use_main_prompt,
                    index=index,
                    all_negative_prompts=p.negative_prompts,
                )

            for i, x_sample in enumerate(x_samples_ddim):
                p.batch_index = i
                image = x_sample
                if p.scripts is not None:
                    from modules import scripts

                    pp = scripts.PostprocessImageArgs(image)
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image

                image = composite_over_original(p, i, image)

                text = infotext(i)
                infotexts.append(text)
                output_images.append(image)

            del x_samples_ddim
            devices.torch_gc()

        if not infotexts:
            infotexts.append(Processed(p, []).infotext(p, 0))

        p.color_corrections = None
        index_of_first_image = 0

    res = Processed(
        p,
        images_list=output_images,
        seed=p.all_seeds[0],
        info=infotexts[0],
        subseed=p.all_subseeds[0],
        index_of_first_image=index_of_first_image,
        infotexts=infotexts,
    )

    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)

    if p.scripts is not None:
        p.scripts.postprocess(p, res)

    return res


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """mirrors processing.StableDiffusionProcessingTxt2Img (latent upscalers only for the hires fix)."""

    cached_hr_uc: list = [None, None]
    cached_hr_c: list = [None, None]

    def __init__(
        self,
        enable_hr: bool = False,
        denoising_strength: float = 0.75,
        firstphase_width: int = 0,
        firstphase_height: int = 0,
        hr_scale: float = 2.0,
        hr_upscaler: str | None = None,
        hr_second_pass_steps: int = 0,
        hr_resize_x: int = 0,
        hr_resize_y: int = 0,
        hr_checkpoint_name: str | None = None,
        hr_sampler_name: str | None = None,
        hr_scheduler: str | None = None,
        hr_prompt: str = "",
        hr_negative_prompt: str = "",
        force_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.enable_hr = enable_hr
        self.firstphase_width = firstphase_width
        self.firstphase_height = firstphase_height
        self.hr_scale = hr_scale
        self.hr_upscaler = hr_upscaler
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_sampler_name = hr_sampler_name
        self.hr_scheduler = hr_scheduler
        self.hr_prompt = hr_prompt
        self.hr_negative_prompt = hr_negative_prompt
        self.force_task_id = force_task_id
        self.hr_checkpoint_info = None
        self.hr_upscale_to_x = 0
        self.hr_upscale_to_y = 0
        self.truncate_x = 0
        self.truncate_y = 0
        self.applied_old_hires_behavior_to = None
        self.latent_scale_mode = None
        self.hr_c = None
        self.hr_uc = None
        self.all_hr_prompts: list[str] = []
        self.all_hr_negative_prompts: list[str] = []
        self.hr_prompts: list[str] = []
        self.hr_negative_prompts: list[str] = []
        self.hr_extra_network_data: dict = {}
        super().__init__(denoising_strength=denoising_strength, **kwargs)
        self.hr_checkpoint_name = hr_checkpoint_name

    def __post_init__(self) -> None:  # mirrors StableDiffusionProcessingTxt2Img.__post_init__
        super().__post_init__()
        self.cached_hr_uc = StableDiffusionProcessingTxt2Img.cached_hr_uc
        self.cached_hr_c = StableDiffusionProcessingTxt2Img.cached_hr_c

    def calculate_target_resolution(self) -> None:  # mirrors Txt2Img.calculate_target_resolution
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            self.extra_generation_params["Hires upscale"] = self.hr_scale
            self.hr_upscale_to_x = int(self.width * self.hr_scale)
            self.hr_upscale_to_y = int(self.height * self.hr_scale)
        else:
            self.extra_generation_params["Hires resize"] = f"{self.hr_resize_x}x{self.hr_resize_y}"
            if self.hr_resize_y == 0:
                self.hr_upscale_to_x = self.hr_resize_x
                self.hr_upscale_to_y = self.hr_resize_x * self.height // self.width
            elif self.hr_resize_x == 0:
                self.hr_upscale_to_x = self.hr_resize_y * self.width // self.height
                self.hr_upscale_to_y = self.hr_resize_y
            else:
                target_w = self.hr_resize_x
                target_h = self.hr_resize_y
                src_ratio = self.width / self.height
                dst_ratio = self.hr_resize_x / self.hr_resize_y
                if src_ratio < dst_ratio:
                    self.hr_upscale_to_x = self.hr_resize_x
                    self.hr_upscale_to_y = self.hr_resize_x * self.height // self.width
                else:
                    self.hr_upscale_to_x = self.hr_resize_y * self.width // self.height
                    self.hr_upscale_to_y = self.hr_resize_y
                f = latent_scale_factor()
                self.truncate_x = (self.hr_upscale_to_x - target_w) // f
                self.truncate_y = (self.hr_upscale_to_y - target_h) // f

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:  # mirrors StableDiffusionProcessingTxt2Img.init
        if self.enable_hr:
            self.extra_generation_params["Denoising strength"] = self.denoising_strength

            if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
                raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")

            if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
                self.extra_generation_params["Hires sampler"] = self.hr_sampler_name

            def get_hr_prompt(p, index, prompt_text, **kwargs):
                hr_prompt = p.all_hr_prompts[index]
                return hr_prompt if hr_prompt != prompt_text else None

            def get_hr_negative_prompt(p, index, negative_prompt, **kwargs):
                hr_negative_prompt = p.all_hr_negative_prompts[index]
                return hr_negative_prompt if hr_negative_prompt != negative_prompt else None

            self.extra_generation_params["Hires prompt"] = get_hr_prompt
            self.extra_generation_params["Hires negative prompt"] = get_hr_negative_prompt

            self.extra_generation_params["Hires schedule type"] = None  # to be set in sd_samplers_kdiffusion.py

            if self.hr_scheduler is None:
                self.hr_scheduler = self.scheduler

            self.latent_scale_mode = (
                shared.latent_upscale_modes.get(self.hr_upscaler, None)
                if self.hr_upscaler is not None
                else shared.latent_upscale_modes.get(shared.latent_upscale_default_mode, "nearest")
            )
            if self.enable_hr and self.latent_scale_mode is None:
                if not any(x.name == self.hr_upscaler for x in shared.sd_upscalers):
                    raise Exception(f"could not find upscaler named {self.hr_upscaler}")

            self.calculate_target_resolution()

            if not state.processing_has_refined_job_count:
                if state.job_count == -1:
                    state.job_count = self.n_iter
                state.job_count = state.job_count * 2
                state.processing_has_refined_job_count = True

            if self.hr_second_pass_steps:
                self.extra_generation_params["Hires steps"] = self.hr_second_pass_steps

            if self.hr_upscaler is not None:
                self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """mirrors StableDiffusionProcessingTxt2Img.sample: first pass, then (enable_hr) sample_hr_pass."""
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)

        x = self.rng.next()

        if self.scripts is not None:
            self.scripts.process_before_every_sampling(
                p=self, x=x, noise=x, c=conditioning, uc=unconditional_conditioning
            )

        samples = self.sampler.sample(
            self, x, conditioning, unconditional_conditioning, image_conditioning=self.txt2img_image_conditioning(x)
        )
        del x

        if not self.enable_hr:
            return samples

        devices.torch_gc()
        decoded_samples = None  # latent upscale only
        return self.sample_hr_pass(samples, decoded_samples, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        """mirrors StableDiffusionProcessingTxt2Img.sample_hr_pass (latent upscalers): is_hr_pass=True, upscaled
        latents, a new sampler, hires conds (at the hires size), process_before_every_sampling, sample_img2img with
        hr_second_pass_steps or steps; returns decoded images (already_decoded)."""
        if shared.state.interrupted:
            return samples

        self.is_hr_pass = True
        target_width = self.hr_upscale_to_x
        target_height = self.hr_upscale_to_y
        f = latent_scale_factor()

        samples = torch.nn.functional.interpolate(
            samples,
            size=(target_height // f, target_width // f),
            mode=self.latent_scale_mode["mode"],
            antialias=self.latent_scale_mode["antialias"],
        )

        shared.state.nextjob()

        img2img_sampler_name = self.hr_sampler_name or self.sampler_name

        self.sampler = sd_samplers.create_sampler(img2img_sampler_name, self.sd_model)

        # an inpainting UNet gets the whole-picture conditioning, or (mask weight < 1) the upscaled picture itself
        if getattr(self, "inpainting_mask_weight", opts.inpainting_mask_weight) < 1.0:
            image_conditioning = self.img2img_image_conditioning(decode_first_stage(self.sd_model, samples), samples)
        else:
            image_conditioning = self.txt2img_image_conditioning(samples)

        samples = samples[
            :,
            :,
            self.truncate_y // 2 : samples.shape[2] - (self.truncate_y + 1) // 2,
            self.truncate_x // 2 : samples.shape[3] - (self.truncate_x + 1) // 2,
        ]

        self.rng = rng.ImageRNG(
            samples.shape[1:],
            self.seeds,
            subseeds=self.subseeds,
            subseed_strength=self.subseed_strength,
            seed_resize_from_h=self.seed_resize_from_h,
            seed_resize_from_w=self.seed_resize_from_w,
        )
        noise = self.rng.next()

        devices.torch_gc()

        if not self.disable_extra_networks:
            extra_networks.activate(self, self.hr_extra_network_data)

        with devices.autocast():
            self.calculate_hr_conds()

        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(p=self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)

        samples = self.sampler.sample_img2img(
            self,
            samples,
            noise,
            self.hr_c,
            self.hr_uc,
            steps=self.hr_second_pass_steps or self.steps,
            image_conditioning=image_conditioning,
        )

        self.sampler = None
        devices.torch_gc()

        decoded_samples = decode_latent_batch(self.sd_model, samples, target_device=devices.cpu, check_for_nans=True)

        self.is_hr_pass = False
        return decoded_samples

    def close(self) -> None:  # mirrors StableDiffusionProcessingTxt2Img.close
        super().close()
        self.hr_c = None
        self.hr_uc = None
        if not opts.persistent_cond_cache:
            StableDiffusionProcessingTxt2Img.cached_hr_uc = [None, None]
            StableDiffusionProcessingTxt2Img.cached_hr_c = [None, None]

    def setup_prompts(self) -> None:  # mirrors StableDiffusionProcessingTxt2Img.setup_prompts
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == "":
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == "":
            self.hr_negative_prompt = self.negative_prompt
        if isinstance(self.hr_prompt, list):
            self.all_hr_prompts = self.hr_prompt
        else:
            self.all_hr_prompts = self.batch_size * self.n_iter * [self.hr_prompt]
        if isinstance(self.hr_negative_prompt, list):
            self.all_hr_negative_prompts = self.hr_negative_prompt
        else:
            self.all_hr_negative_prompts = self.batch_size * self.n_iter * [self.hr_negative_prompt]
        self.all_hr_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_hr_prompts]
        self.all_hr_negative_prompts = [
            shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles) for x in self.all_hr_negative_prompts
        ]

    def calculate_hr_conds(self) -> None:
        """mirrors StableDiffusionProcessingTxt2Img.calculate_hr_conds: conds at the hires size, scheduled with
        hires_steps = total steps of the hires sampler (prompt editing times relative to the second pass)."""
        if self.hr_c is not None:
            return

        hr_prompts = prompt_parser.SdConditioning(
            self.hr_prompts, width=self.hr_upscale_to_x, height=self.hr_upscale_to_y
        )
        hr_negative_prompts = prompt_parser.SdConditioning(
            self.hr_negative_prompts, width=self.hr_upscale_to_x, height=self.hr_upscale_to_y, is_negative_prompt=True
        )

        sampler_config = sd_samplers.find_sampler_config(self.hr_sampler_name or self.sampler_name)
        steps = self.hr_second_pass_steps or self.steps
        total_steps = sampler_config.total_steps(steps) if sampler_config else steps

        self.hr_uc = self.get_conds_with_caching(
            prompt_parser.get_learned_conditioning,
            hr_negative_prompts,
            self.firstpass_steps,
            [self.cached_hr_uc, self.cached_uc],
            self.hr_extra_network_data,
            total_steps,
        )
        self.hr_c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning,
            hr_prompts,
            self.firstpass_steps,
            [self.cached_hr_c, self.cached_c],
            self.hr_extra_network_data,
            total_steps,
        )

    def setup_conds(self) -> None:  # mirrors StableDiffusionProcessingTxt2Img.setup_conds
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_uc = None
        self.hr_c = None
        if self.enable_hr and self.hr_checkpoint_info is None and shared.opts.hires_fix_use_firstpass_conds:
            self.calculate_hr_conds()

    def get_conds(self):  # mirrors StableDiffusionProcessingTxt2Img.get_conds
        if self.is_hr_pass:
            return self.hr_c, self.hr_uc
        return super().get_conds()

    def parse_extra_network_prompts(self):  # mirrors StableDiffusionProcessingTxt2Img.parse_extra_network_prompts
        res = super().parse_extra_network_prompts()
        if self.enable_hr:
            self.hr_prompts = self.all_hr_prompts[
                self.iteration * self.batch_size : (self.iteration + 1) * self.batch_size
            ]
            self.hr_negative_prompts = self.all_hr_negative_prompts[
                self.iteration * self.batch_size : (self.iteration + 1) * self.batch_size
            ]
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(self.hr_prompts)
        return res


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """mirrors processing.StableDiffusionProcessingImg2Img, inpainting included. Stand-in differences: init_images
    may be [3, H, W] float tensors in [0, 1], PIL images or HxWx3 uint8 arrays, and are resized plainly (no crop/fill
    resize modes, no latent-upscale mode 3); the mask (`mask=`) may be a PIL image, a uint8 array or a tensor in
    [0, 1]; images and masks are tensors/uint8 arrays instead of PIL images (see modules/masking.py)."""

    def __init__(
        self,
        init_images: list | None = None,
        resize_mode: int = 0,
        denoising_strength: float = 0.75,
        image_cfg_scale: float | None = None,
        mask=None,
        mask_blur_x: int = 4,
        mask_blur_y: int = 4,
        mask_blur: int | None = None,
        mask_round: bool = True,
        inpainting_fill: int = 0,
        inpaint_full_res: bool = True,
        inpaint_full_res_padding: int = 0,
        inpainting_mask_invert: int = 0,
        initial_noise_multiplier: float | None = None,
        latent_mask=None,
        force_task_id=None,
        **kwargs: Any,
    ) -> None:
        self.init_images = init_images
        self.resize_mode = resize_mode
        self.image_cfg_scale = image_cfg_scale
        self.mask = mask
        self.mask_blur_x = mask_blur_x
        self.mask_blur_y = mask_blur_y
        self.mask_blur = mask_blur  # an int sets both directions
        self.mask_round = mask_round
        self.inpainting_fill = inpainting_fill
        self.inpaint_full_res = inpaint_full_res
        self.inpaint_full_res_padding = inpaint_full_res_padding
        self.inpainting_mask_invert = inpainting_mask_invert
        self.initial_noise_multiplier = initial_noise_multiplier
        self.latent_mask = latent_mask
        self.force_task_id = force_task_id
        self.image_mask = None
        self.nmask = None
        self.image_conditioning = None
        self.init_img_hash = None
        self.mask_for_overlay = None
        self.init_latent = None
        super().__init__(denoising_strength=denoising_strength, **kwargs)

    def __post_init__(self) -> None:  # mirrors StableDiffusionProcessingImg2Img.__post_init__
        super().__post_init__()
        # the argument `mask` is the user's mask image; p.mask becomes the latent mask of the kept part in init()
        self.image_mask = self.mask
        self.mask = None
        self.initial_noise_multiplier = (
            opts.initial_noise_multiplier if self.initial_noise_multiplier is None else self.initial_noise_multiplier
        )

    @property
    def mask_blur(self):  # mirrors StableDiffusionProcessingImg2Img.mask_blur: one value only when x == y
        return self.mask_blur_x if self.mask_blur_x == self.mask_blur_y else None

    @mask_blur.setter
    def mask_blur(self, value) -> None:
        if isinstance(value, int):
            self.mask_blur_x = value
            self.mask_blur_y = value

    def _image_to_tensor(self, img, resize: bool = True) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            t = img.detach().float().cpu()
            if t.ndim == 4:
                t = t[0]
        else:
            arr = np.array(img.convert("RGB") if hasattr(img, "convert") else img).astype(np.float32) / 255.0
            t = torch.from_numpy(np.moveaxis(arr, 2, 0))
        if resize and tuple(t.shape[-2:]) != (self.height, self.width):
            t = torch.nn.functional.interpolate(
                t[None], size=(self.height, self.width), mode="bilinear", align_corners=False
            )[0]
        return t

    def _blurred_mask(self, image_mask) -> np.ndarray:
        """The user's mask as an L image: binarised (create_binary_mask), inverted for "Inpaint not masked", then
        Gaussian-blurred along x and along y (standard deviation mask_blur_x / _y, 2 * int(2.5 s + 0.5) + 1 taps,
        mirrored edges), back to 8 bits after each direction."""
        mask = create_binary_mask(image_mask, round=self.mask_round)
        if self.inpainting_mask_invert:
            mask = 255 - mask
            self.extra_generation_params["Mask mode"] = "Inpaint not masked"
        for blur, dim in ((self.mask_blur_x, -1), (self.mask_blur_y, -2)):
            if blur > 0:
                taps = 2 * int(2.5 * blur + 0.5) + 1
                mask = masking.to_l_image(masking.blur_1d(masking.as_mask_tensor(mask), blur, taps, dim))
        if self.mask_blur_x > 0 or self.mask_blur_y > 0:
            self.extra_generation_params["Mask blur"] = self.mask_blur
        return mask

    def _only_masked_area(self, mask: np.ndarray):
        """ "Inpaint only masked": (the mask of the sampled area, at width x height; that area's box in the picture).
        The box holds the mask with its padding, widened to the processing aspect ratio; the output is pasted back
        there (paste_to). A blank mask gives (None, None): the generation becomes a plain img2img."""
        self.mask_for_overlay = mask
        box = masking.get_crop_region_v2(mask, self.inpaint_full_res_padding)
        if box is None:
            self.mask_for_overlay = None
            self.inpaint_full_res = False
            self.comment('Unable to perform "Inpaint Only mask" because mask is blank, switch to img2img mode.')
            return None, None
        picture_height, picture_width = mask.shape
        left, top, right, bottom = masking.expand_crop_region(
            box, self.width, self.height, picture_width, picture_height
        )
        self.paste_to = (left, top, right - left, bottom - top)
        self.extra_generation_params.update(
            {"Inpaint area": "Only masked", "Masked area padding": self.inpaint_full_res_padding}
        )
        return resize_l_image(mask[top:bottom, left:right], self.width, self.height), (left, top, right, bottom)

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:  # mirrors StableDiffusionProcessingImg2Img.init
        """Facts modelled (v1.10.1): with a mask, "Inpaint only masked" samples the mask's bounding box (grown by the
        padding, then to the processing aspect ratio) resized to width x height and remembers where to paste it
        (paste_to); a blank mask falls back to plain img2img. Otherwise the mask is resized to width x height and
        doubled for the overlay. The overlay keeps the original outside the mask. Masked content "fill" (0) paints
        the masked area from its surroundings before encoding, "original" (1) keeps it, "latent noise" (2) puts seeded
        noise there in the latent, "latent nothing" (3) zeros. p.nmask is the latent-size mask (1 = repaint, rounded
        unless mask_round is off), p.mask = 1 - p.nmask; both have the latent's channels."""
        self.extra_generation_params["Denoising strength"] = self.denoising_strength

        self.image_cfg_scale = self.image_cfg_scale if shared.sd_model.cond_stage_key == "edit" else None

        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        crop_region = None

        image_mask = self.image_mask
        if image_mask is not None:
            image_mask = self._blurred_mask(image_mask)
            if self.inpaint_full_res:
                image_mask, crop_region = self._only_masked_area(image_mask)
            else:
                image_mask = resize_l_image(image_mask, self.width, self.height)
                self.mask_for_overlay = masking.to_l_image(masking.as_mask_tensor(image_mask) * 2)  # overlay: doubled
            self.overlay_images = []

        latent_mask = self.latent_mask if self.latent_mask is not None else image_mask

        imgs = []
        for img in self.init_images:
            image = self._image_to_tensor(img, resize=crop_region is None)

            if image_mask is not None:
                keep = 1.0 - resize_plane(masking.as_mask_tensor(self.mask_for_overlay), image.shape[2], image.shape[1])
                self.overlay_images.append(torch.cat([image, keep.clamp(0, 1)[None]]))

            if crop_region is not None:
                x1, y1, x2, y2 = crop_region
                image = resize_plane(image[:, y1:y2, x1:x2], self.width, self.height)

            if image_mask is not None and self.inpainting_fill != 1:
                fill_mask = resize_plane(masking.as_mask_tensor(latent_mask), image.shape[2], image.shape[1])
                image = masking.fill(image, fill_mask)
                if self.inpainting_fill == 0:
                    self.extra_generation_params["Masked content"] = "fill"

            imgs.append(image)

        if len(imgs) == 1:
            batch_images = imgs[0][None].repeat(self.batch_size, 1, 1, 1)
            if self.overlay_images is not None:
                self.overlay_images = self.overlay_images * self.batch_size
        elif len(imgs) <= self.batch_size:
            self.batch_size = len(imgs)
            batch_images = torch.stack(imgs)
        else:
            raise RuntimeError(f"bad number of images passed: {len(imgs)}; expecting {self.batch_size} or less")

        image = batch_images.to(shared.device, dtype=devices.dtype_vae)

        if opts.sd_vae_encode_method != "Full":
            self.extra_generation_params["VAE Encoder"] = opts.sd_vae_encode_method

        self.init_latent = images_tensor_to_samples(
            image, approximation_indexes.get(opts.sd_vae_encode_method), self.sd_model
        )
        devices.torch_gc()

        if image_mask is not None:
            channels, latent_h, latent_w = self.init_latent.shape[1:]
            small = torch.nn.functional.interpolate(
                masking.as_mask_tensor(latent_mask)[None, None],
                size=(latent_h, latent_w),
                mode="bicubic",
                antialias=True,
            )[0, 0]
            repaint = torch.from_numpy(masking.to_l_image(small).astype(np.float32) / 255)  # an 8-bit image again
            if self.mask_round:
                repaint = torch.round(repaint)
            repaint = repaint[None].repeat(channels, 1, 1)
            self.mask = (1.0 - repaint).to(shared.device, dtype=devices.dtype)
            self.nmask = repaint.to(shared.device, dtype=devices.dtype)

            if self.inpainting_fill == 2:
                noise = create_random_tensors(self.init_latent.shape[1:], all_seeds[0 : self.init_latent.shape[0]])
                self.init_latent = self.init_latent * self.mask + noise * self.nmask
                self.extra_generation_params["Masked content"] = "latent noise"
            elif self.inpainting_fill == 3:
                self.init_latent = self.init_latent * self.mask
                self.extra_generation_params["Masked content"] = "latent nothing"

        self.image_conditioning = self.img2img_image_conditioning(
            image * 2 - 1, self.init_latent, image_mask, self.mask_round
        )

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """mirrors StableDiffusionProcessingImg2Img.sample: with a mask, the kept part of the original latent replaces
        the sample's once more after sampling (the final on_mask_blend, without denoiser and sigma)."""
        x = self.rng.next()

        if self.initial_noise_multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
            x *= self.initial_noise_multiplier

        if self.scripts is not None:
            self.scripts.process_before_every_sampling(
                p=self, x=self.init_latent, noise=x, c=conditioning, uc=unconditional_conditioning
            )

        samples = self.sampler.sample_img2img(
            self,
            self.init_latent,
            x,
            conditioning,
            unconditional_conditioning,
            image_conditioning=self.image_conditioning,
        )

        del x
        devices.torch_gc()
        return samples if self.mask is None else self.final_mask_blend(samples)

    def final_mask_blend(self, samples):
        """The kept part of the original latent replaces the sample's once more after sampling; scripts' on_mask_blend
        may change that (MaskBlendArgs without denoiser and sigma: is_final_blend)."""
        from modules import scripts

        default = self.init_latent * self.mask + samples * self.nmask
        args = scripts.MaskBlendArgs(samples, self.nmask, self.init_latent, self.mask, default)
        if self.scripts is not None:
            self.scripts.on_mask_blend(self, args)
        return args.blended_latent

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return (
            self.token_merging_ratio
            or ("token_merging_ratio" in self.override_settings and opts.token_merging_ratio)
            or opts.token_merging_ratio_img2img
            or opts.token_merging_ratio
        )
