"""Stand-in for modules/processing.py (v1.10.1): processing objects, process_images and infotext creation.

A behavioural model written for the tests: each class and function names the WebUI behaviour it models; the
decomposition (field tables, helper functions) is the stand-in's own."""

from __future__ import annotations

import contextlib
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any

import modules.sd_samplers_common as sd_samplers_common
import modules.shared as shared
import numpy as np
import torch
from modules import devices, errors, extra_networks, infotext_utils, masking, prompt_parser, rng, sd_models, sd_samplers
from modules.rng import slerp  # noqa: F401  (re-exported like the WebUI)
from modules.sd_samplers_common import approximation_indexes, decode_first_stage, images_tensor_to_samples
from modules.shared import opts, state

opt_C = 4
opt_f = 8

fork: Any = None
"""The active fork flavour of the stand-in (``fork_flavour.hosts.Host``), None for A1111: set by
``fork_flavour.select``. It adds the fork's processing fields, resets the unet before every sampling pass (the
forks' ``forge_objects`` reset) and leaves the uncond unencoded where the fork does."""

RANDOM_SEED_LIMIT = 4294967294  # a random seed is drawn from [0, 2**32 - 2)


def latent_scale_factor(model=None) -> int:
    """Stand-in helper: pixels per latent cell (8 for SD; a model may set `latent_scale_factor`, e.g. 1 for a
    pixel-space toy model)."""
    model = model if model is not None else shared.sd_model
    return int(getattr(model, "latent_scale_factor", opt_f))


def program_version() -> str:  # models launch.git_tag / program_version
    return "v1.10.1"


def get_fixed_seed(seed):
    """Models processing.get_fixed_seed: -1, None, "" and any string that is not a whole number ask for a random
    seed; a numeric string counts as its number; everything else (a list included) is returned as it is."""
    if isinstance(seed, str):
        try:
            seed = int(seed)
        except ValueError:
            seed = None
    wants_random = seed is None or (not isinstance(seed, (list, tuple)) and seed == -1)
    return int(random.randrange(RANDOM_SEED_LIMIT)) if wants_random else seed


def fix_seed(p) -> None:
    """Models processing.fix_seed: the random seeds of p are drawn now, so that later copies share them."""
    p.seed, p.subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)


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


# --- infotext -------------------------------------------------------------------------------------------------------


@dataclass
class InfotextContext:
    """What one image's infotext is made from (models the local variables of processing.create_infotext, which the
    WebUI passes on as keyword arguments to callables stored in extra_generation_params)."""

    p: Any
    index: int
    prompt_text: str
    negative_prompt: str
    use_main_prompt: bool
    all_prompts: list
    all_seeds: list
    all_subseeds: list
    all_negative_prompts: list
    comments: Any = None
    iteration: int = 0
    position_in_batch: int = 0
    generation_params: dict = field(default_factory=dict)

    def seed(self, own: list, main: list):
        return main[0] if self.use_main_prompt else own[self.index]

    def as_kwargs(self) -> dict:
        return dict(self.__dict__)


def _is_unset(ratio) -> bool:
    return ratio == 0


def _inpainting_weight(c: InfotextContext):
    if not c.p.is_using_inpainting_conditioning:
        return None
    return getattr(c.p, "inpainting_mask_weight", opts.inpainting_mask_weight)


def _eta_noise_seed_delta(c: InfotextContext):
    if opts.eta_noise_seed_delta == 0 or not sd_samplers_common.is_sampler_using_eta_noise_seed_delta(c.p):
        return None
    return opts.eta_noise_seed_delta


def _clip_skip(c: InfotextContext):
    value = getattr(c.p, "clip_skip", opts.CLIP_stop_at_last_layers)
    return value if value > 1 else None


def _token_merging(c: InfotextContext):
    ratio = c.p.get_token_merging_ratio()
    return None if _is_unset(ratio) else ratio


def _hires_token_merging(c: InfotextContext):
    ratio = c.p.get_token_merging_ratio(for_hr=True)
    return None if not getattr(c.p, "enable_hr", False) or _is_unset(ratio) else ratio


def _only_if(flag, value):
    return value if flag else None


# The leading fields of every infotext, in the WebUI's order (None: left out). The processing object's
# extra_generation_params follow them, then _TRAILING_FIELDS.
_LEADING_FIELDS: tuple = (
    ("Steps", lambda c: c.p.steps),
    ("Sampler", lambda c: c.p.sampler_name),
    ("CFG scale", lambda c: c.p.cfg_scale),
    ("Image CFG scale", lambda c: getattr(c.p, "image_cfg_scale", None)),
    ("Seed", lambda c: c.seed(c.all_seeds, c.p.all_seeds)),
    ("Face restoration", lambda c: _only_if(c.p.restore_faces, opts.face_restoration_model)),
    ("Size", lambda c: f"{c.p.width}x{c.p.height}"),
    ("Model hash", lambda c: _only_if(opts.add_model_hash_to_info, c.p.sd_model_hash)),
    ("Model", lambda c: _only_if(opts.add_model_name_to_info, c.p.sd_model_name)),
    ("Variation seed", lambda c: _only_if(c.p.subseed_strength != 0, c.seed(c.all_subseeds, c.p.all_subseeds))),
    ("Variation seed strength", lambda c: _only_if(c.p.subseed_strength != 0, c.p.subseed_strength)),
    ("Denoising strength", lambda c: c.p.extra_generation_params.get("Denoising strength")),
    ("Conditional mask weight", _inpainting_weight),
    ("Clip skip", _clip_skip),
    ("ENSD", _eta_noise_seed_delta),
    ("Token merging ratio", _token_merging),
    ("Token merging ratio hr", _hires_token_merging),
    ("Init image hash", lambda c: getattr(c.p, "init_img_hash", None)),
    ("RNG", lambda c: _only_if(opts.randn_source != "GPU", opts.randn_source)),
    ("Tiling", lambda c: _only_if(c.p.tiling, "True")),
)

_TRAILING_FIELDS: tuple = (
    ("Version", lambda c: _only_if(opts.add_version_to_infotext, program_version())),
    ("User", lambda c: _only_if(opts.add_user_name_to_info, c.p.user)),
)


def _resolve_field(key: str, value, context: InfotextContext):
    """A stored value as the infotext shows it: a list holds one value per image, a callable is asked with the
    context; a callable that fails is reported and the field left out."""
    try:
        if isinstance(value, list):
            return value[context.index]
        if callable(value):
            return value(**context.as_kwargs())
    except Exception:
        errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
        return None
    return value


def _format_fields(params: dict) -> str:
    """'Key: value, ...' with values quoted by infotext_utils.quote; a value equal to its key stands alone."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        parts.append(key if key == value else f"{key}: {infotext_utils.quote(value)}")
    return ", ".join(parts)


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
    """Models processing.create_infotext: 'prompt\\nNegative prompt: ...\\nKey: value, ...' for the image at `index`
    (default: position_in_batch of batch `iteration`; 0 with use_main_prompt, which also takes p's main prompts)."""
    if use_main_prompt:
        index = 0
    elif index is None:
        index = iteration * p.batch_size + position_in_batch
    negatives = p.all_negative_prompts if all_negative_prompts is None else all_negative_prompts

    context = InfotextContext(
        p=p,
        index=index,
        prompt_text=p.main_prompt if use_main_prompt else all_prompts[index],
        negative_prompt=p.main_negative_prompt if use_main_prompt else negatives[index],
        use_main_prompt=use_main_prompt,
        all_prompts=all_prompts,
        all_seeds=all_seeds,
        all_subseeds=all_subseeds,
        all_negative_prompts=negatives,
        comments=comments,
        iteration=iteration,
        position_in_batch=position_in_batch,
    )

    params = context.generation_params
    params.update((key, compute(context)) for key, compute in _LEADING_FIELDS)
    params.update(p.extra_generation_params)
    params.update((key, compute(context)) for key, compute in _TRAILING_FIELDS)
    for key in list(params):
        params[key] = _resolve_field(key, params[key], context)

    lines = [context.prompt_text]
    if context.negative_prompt:
        lines.append(f"Negative prompt: {context.negative_prompt}")
    lines.append(_format_fields(params))
    return "\n".join(lines).strip()


# --- processing objects ---------------------------------------------------------------------------------------------


def _first_truthy(*values):
    """`a or b or c`: the first value that is set, else the last one."""
    return next((value for value in values if value), values[-1])


def _per_image(value, count: int) -> list:
    """A prompt given as a list is already per image; a single prompt is repeated for `count` images."""
    return value if isinstance(value, list) else [value] * count


def _with_styles(prompts: list, styles, negative: bool = False) -> list:
    """The prompt styles applied to each prompt (shared.prompt_styles; the negative part for negative prompts)."""
    apply = (
        shared.prompt_styles.apply_negative_styles_to_prompt
        if negative
        else shared.prompt_styles.apply_styles_to_prompt
    )
    return [apply(text, styles) for text in prompts]


def _batch_slice(values: list, iteration: int, batch_size: int) -> list:
    """The entries of batch `iteration` in a list that holds one entry per image of the whole job."""
    start = iteration * batch_size
    return values[start : start + batch_size]


def _reset_class_caches(cls, *names: str) -> None:
    """Forget the conds cached on a processing class (its [params, cond] pairs), unless they are meant to persist."""
    if opts.persistent_cond_cache:
        return
    for name in names:
        setattr(cls, name, [None, None])


# Options that change what a prompt encodes to: part of the cond cache key (with the pass size and the model).
_COND_OPTIONS = ("CLIP_stop_at_last_layers", "sdxl_crop_left", "sdxl_crop_top", "emphasis")

# Sampler parameters that fall back to the option of the same name when the request leaves them out.
_SAMPLER_PARAMETERS_FROM_OPTIONS = ("s_min_uncond", "s_churn", "s_tmin", "s_tmax", "s_noise")

# Seed options that only count while "extra" seed settings are enabled, and their values otherwise.
_SEED_EXTRAS_OFF = {"subseed": -1, "subseed_strength": 0, "seed_resize_from_h": 0, "seed_resize_from_w": 0}


class StableDiffusionProcessing:
    """Models processing.StableDiffusionProcessing. Its dataclass fields are the keyword arguments in FIELDS (with
    their defaults; subclasses add theirs); unknown keywords become attributes too, as scripts rely on."""

    FIELDS: dict = {
        # what to draw
        "prompt": "",
        "negative_prompt": "",
        "prompt_for_display": None,
        "styles": None,
        # seeds
        "seed": -1,
        "subseed": -1,
        "subseed_strength": 0,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "seed_enable_extras": True,
        # picture and batch
        "width": 512,
        "height": 512,
        "batch_size": 1,
        "n_iter": 1,
        "restore_faces": None,
        "tiling": None,
        # sampling
        "sampler_name": None,
        "sampler_index": None,
        "scheduler": None,
        "steps": 50,
        "cfg_scale": 7.0,
        "denoising_strength": None,
        "eta": None,
        "ddim_discretize": None,
        "s_min_uncond": None,
        "s_churn": None,
        "s_tmin": None,
        "s_tmax": None,
        "s_noise": None,
        "token_merging_ratio": 0,
        "token_merging_ratio_hr": 0,
        "refiner_checkpoint": None,
        "refiner_switch_at": None,
        "hr_checkpoint_name": None,
        "firstpass_image": None,
        # model and run
        "sd_model": None,
        "override_settings": None,
        "override_settings_restore_afterwards": True,
        "disable_extra_networks": False,
        "do_not_reload_embeddings": False,
        "extra_generation_params": None,
        "overlay_images": None,
        # output
        "outpath_samples": None,
        "outpath_grids": None,
        "do_not_save_samples": False,
        "do_not_save_grid": False,
    }

    cached_uc: list = [None, None]
    cached_c: list = [None, None]

    def __init__(self, **kwargs: Any) -> None:
        fields: dict = {}
        for cls in reversed(type(self).__mro__):
            fields.update(vars(cls).get("FIELDS", {}))
        for name, default in fields.items():
            setattr(self, name, kwargs.pop(name, default))
        if fork is not None:
            fork.add_fields(self, kwargs)
        for cls in reversed(type(self).__mro__):
            if "initial_state" in vars(cls):
                for name, value in vars(cls)["initial_state"](self).items():
                    setattr(self, name, value)
        for name, value in kwargs.items():
            setattr(self, name, value)
        self.__post_init__()

    def initial_state(self) -> dict:
        """The attributes a run fills in (the WebUI's init=False fields), fresh for each object."""
        return {
            "scripts_value": None,
            "script_args_value": None,
            "scripts_setup_complete": False,
            "comments": {},
            "sampler": None,
            "rng": None,
            "c": None,
            "uc": None,
            "step_multiplier": 1,
            "firstpass_steps": self.steps,
            "is_hr_pass": False,
            "is_using_inpainting_conditioning": False,
            "paste_to": None,
            "color_corrections": None,
            "iteration": 0,
            "batch_index": 0,
            "all_prompts": [],
            "all_negative_prompts": [],
            "all_seeds": [],
            "all_subseeds": [],
            "main_prompt": None,
            "main_negative_prompt": None,
            "prompts": [],
            "negative_prompts": [],
            "seeds": [],
            "subseeds": [],
            "extra_network_data": {},
            "user": None,
            "is_api": False,
            "sd_model_name": None,
            "sd_model_hash": None,
            "sd_vae_name": None,
            "sd_vae_hash": None,
        }

    def __post_init__(self) -> None:
        """Models StableDiffusionProcessing.__post_init__: sampler_index is only warned about; empty containers for
        styles, extra_generation_params and override_settings; seed extras switched off unless enabled; the
        instance shares the class-level cond caches."""
        if self.sampler_index is not None:
            print(
                "sampler_index argument for StableDiffusionProcessing does not do anything; use sampler_name",
                file=sys.stderr,
            )
        self.comments = {}
        self.styles = self.styles if self.styles is not None else []
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.sampler_noise_scheduler_override = None
        self.refiner_checkpoint_info = None
        if not self.seed_enable_extras:
            for name, value in _SEED_EXTRAS_OFF.items():
                setattr(self, name, value)
        self.cached_c = StableDiffusionProcessing.cached_c
        self.cached_uc = StableDiffusionProcessing.cached_uc

    @property
    def sd_model(self):
        """mirrors StableDiffusionProcessing.sd_model: always the loaded model (a refiner switch to another
        architecture makes it the refiner's new object); setting it does nothing."""
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value) -> None:
        pass

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
        """Models StableDiffusionProcessing.init: nothing to prepare in the base class."""

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self) -> None:
        """Models StableDiffusionProcessing.close: drops the sampler and conds, and the class-level cond caches
        unless the option "persistent_cond_cache" keeps them."""
        self.sampler = self.c = self.uc = None
        _reset_class_caches(StableDiffusionProcessing, "cached_c", "cached_uc")

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        """Models StableDiffusionProcessing.get_token_merging_ratio: the request's ratio, else the option's; the
        hires pass looks at its own pair first."""
        own = (self.token_merging_ratio, opts.token_merging_ratio)
        if for_hr:
            return _first_truthy(self.token_merging_ratio_hr, opts.token_merging_ratio_hr, *own)
        return _first_truthy(*own)

    def setup_prompts(self) -> None:
        """Models StableDiffusionProcessing.setup_prompts: one prompt and one negative prompt per image of the job
        (batch_size x n_iter, or the length of whichever is given as a list), styles applied."""
        count = self.batch_size * self.n_iter
        if isinstance(self.negative_prompt, list) and not isinstance(self.prompt, list):
            count = len(self.negative_prompt)
        prompts = _per_image(self.prompt, count)
        negatives = _per_image(self.negative_prompt, len(prompts))
        if len(negatives) != len(prompts):
            raise RuntimeError(
                f"Received a different number of prompts ({len(prompts)}) and negative prompts ({len(negatives)})"
            )
        self.all_prompts = _with_styles(prompts, self.styles)
        self.all_negative_prompts = _with_styles(negatives, self.styles, negative=True)
        self.main_prompt, self.main_negative_prompt = self.all_prompts[0], self.all_negative_prompts[0]

    def cached_params(self, required_prompts, steps, extra_network_data, hires_steps=None, use_old_scheduling=False):
        """Models StableDiffusionProcessing.cached_params: everything a cond depends on, as a cache key: the prompts
        and their schedule, the loaded model, the extra networks, the pass size and the options in _COND_OPTIONS."""
        schedule = (required_prompts, steps, hires_steps, use_old_scheduling)
        model = (getattr(shared.sd_model, "sd_checkpoint_info", None), id(shared.sd_model))
        settings = tuple(getattr(opts, name) for name in _COND_OPTIONS)
        distilled = (self.distilled_cfg_scale, self.hr_distilled_cfg) if fork is not None and fork.family == 2 else ()
        return schedule + model + (repr(extra_network_data), self.width, self.height) + settings + distilled

    def get_conds_with_caching(self, function, required_prompts, steps, caches, extra_network_data, hires_steps=None):
        """Models StableDiffusionProcessing.get_conds_with_caching: a cond found in any of `caches` (class-level
        [params, cond] pairs, shared between processing objects) under the same parameters is reused; otherwise
        `function` computes it and the first cache keeps it. With the old prompt-editing timeline option the
        infotext notes when the old and new timelines differ."""
        use_old = shared.opts.use_old_scheduling
        if use_old:
            timelines = [
                prompt_parser.get_learned_conditioning_prompt_schedules(required_prompts, steps, hires_steps, old)
                for old in (False, True)
            ]
            if timelines[0] != timelines[1]:
                self.extra_generation_params["Old prompt editing timelines"] = True

        key = self.cached_params(required_prompts, steps, extra_network_data, hires_steps, use_old)
        for stored_key, cond in caches:
            if stored_key is not None and stored_key == key:
                return cond
        target = caches[0]
        with devices.autocast():
            target[1] = function(shared.sd_model, required_prompts, steps, hires_steps, use_old)
        target[0] = key
        return target[1]

    def _encode_pass_conds(self, prompts, negatives, size, schedule_steps, caches, networks, hires_steps=None):
        """(c, uc) of one pass: the negative prompts (is_negative_prompt) through get_learned_conditioning first,
        then the prompts through get_multicond_learned_conditioning, both at the pass size `size` (w, h). A fork
        flavour may leave uc None (not encoded)."""
        width, height = size
        uc_caches, c_caches = caches
        uc = None
        extra = {}
        hires = hires_steps is not None
        if fork is not None and fork.family == 2:  # Forge, Neo: the pass's distilled CFG scale goes with both
            extra["distilled_cfg_scale"] = self.hr_distilled_cfg if hires else self.distilled_cfg_scale
        if fork is None or fork.encodes_uncond(self, hires=hires):
            negative_input = prompt_parser.SdConditioning(
                negatives, width=width, height=height, is_negative_prompt=True, **extra
            )
            uc = self.get_conds_with_caching(
                prompt_parser.get_learned_conditioning, negative_input, schedule_steps, uc_caches, networks, hires_steps
            )
        positive_input = prompt_parser.SdConditioning(prompts, width=width, height=height, **extra)
        c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning,
            positive_input,
            schedule_steps,
            c_caches,
            networks,
            hires_steps,
        )
        return c, uc

    def setup_conds(self) -> None:
        """Models StableDiffusionProcessing.setup_conds: c and uc scheduled over the sampler's total steps (twice
        the steps for second-order samplers; step_multiplier records the factor)."""
        config = sd_samplers.find_sampler_config(self.sampler_name)
        total = config.total_steps(self.steps) if config else self.steps
        self.step_multiplier = total // self.steps
        self.firstpass_steps = total
        self.c, self.uc = self._encode_pass_conds(
            self.prompts,
            self.negative_prompts,
            (self.width, self.height),
            total,
            ([self.cached_uc], [self.cached_c]),
            self.extra_network_data,
        )

    def get_conds(self):
        """Models StableDiffusionProcessing.get_conds: (c, uc) of the current pass."""
        return self.c, self.uc

    def parse_extra_network_prompts(self):
        """Models StableDiffusionProcessing.parse_extra_network_prompts: LoRA-style tags leave the batch's prompts
        and become extra_network_data (see modules/extra_networks.py)."""
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)
        return self.extra_network_data

    def fill_fields_from_opts(self) -> None:
        """Models StableDiffusionProcessing.fill_fields_from_opts: unset sampler parameters take the options'
        values; a tmax of 0 means no upper limit."""
        for name in _SAMPLER_PARAMETERS_FROM_OPTIONS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(opts, name))
        self.s_tmax = self.s_tmax or float("inf")


# --- results --------------------------------------------------------------------------------------------------------


def _first(value):
    """The first entry of a per-image list, or the value itself."""
    return value[0] if isinstance(value, list) else value


def _seed_number(value) -> int:
    return -1 if value is None else int(_first(value))


class Processed:
    """Models processing.Processed: the result of process_images, holding a snapshot of the request's parameters
    (_FROM_P) beside the images and their infotexts."""

    # attributes copied from the processing object under the same name
    _FROM_P = (
        "width",
        "height",
        "batch_size",
        "steps",
        "cfg_scale",
        "sampler_name",
        "subseed_strength",
        "seed_resize_from_w",
        "seed_resize_from_h",
        "eta",
        "s_min_uncond",
        "s_churn",
        "s_noise",
        "s_tmin",
        "s_tmax",
        "sampler_noise_scheduler_override",
        "restore_faces",
        "styles",
        "sd_model_name",
        "sd_model_hash",
        "token_merging_ratio",
        "token_merging_ratio_hr",
        "extra_generation_params",
        "is_using_inpainting_conditioning",
    )
    # attributes Processed.js() puts into its JSON besides the first prompts and extra_generation_params
    _JS_FIELDS = (
        "all_prompts",
        "all_negative_prompts",
        "seed",
        "all_seeds",
        "subseed",
        "all_subseeds",
        "width",
        "height",
        "sampler_name",
        "cfg_scale",
        "steps",
        "batch_size",
        "index_of_first_image",
        "infotexts",
        "version",
    )

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
        for name in self._FROM_P:
            setattr(self, name, getattr(p, name))
        self.images = images_list
        self.info = info
        self.infotexts = infotexts or [info] * len(images_list)
        self.index_of_first_image = index_of_first_image
        self.comments = "".join(f"{text}\n" for text in p.comments)
        self.prompt = _first(p.prompt)
        self.negative_prompt = _first(p.negative_prompt)
        self.seed = _seed_number(seed)
        self.subseed = _seed_number(subseed)
        self.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.face_restoration_model = opts.face_restoration_model if p.restore_faces else None
        self.clip_skip = opts.CLIP_stop_at_last_layers
        self.job_timestamp = state.job_timestamp
        self.version = program_version()
        # per-image lists: given, else p's, else the single value
        given = {
            "all_prompts": (all_prompts, self.prompt),
            "all_negative_prompts": (all_negative_prompts, self.negative_prompt),
            "all_seeds": (all_seeds, self.seed),
            "all_subseeds": (all_subseeds, self.subseed),
        }
        for name, (explicit, single) in given.items():
            setattr(self, name, explicit or getattr(p, name) or [single])

    def js(self) -> str:
        """Models Processed.js: the JSON "info" of API responses (callables of extra_generation_params left out,
        values JSON cannot hold written as null)."""
        data = {name: getattr(self, name) for name in self._JS_FIELDS}
        data["prompt"] = self.all_prompts[0]
        data["negative_prompt"] = self.all_negative_prompts[0]
        data["extra_generation_params"] = {
            key: value for key, value in self.extra_generation_params.items() if not callable(value)
        }
        return json.dumps(data, default=lambda _unserialisable: None)

    def infotext(self, p: StableDiffusionProcessing, index: int) -> str:
        """Models Processed.infotext: the infotext of image `index` of the job, counted across batches."""
        batch, position = divmod(index, self.batch_size)
        return create_infotext(
            p,
            self.all_prompts,
            self.all_seeds,
            self.all_subseeds,
            comments=[],
            iteration=batch,
            position_in_batch=position,
        )

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return self.token_merging_ratio_hr if for_hr else self.token_merging_ratio


# --- process_images -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _overridden_options(p: StableDiffusionProcessing):
    """The request's override_settings applied as options for the run (API-style, without callbacks) and, unless
    override_settings_restore_afterwards is off, put back afterwards. A checkpoint override is dropped: the stand-in
    has one loaded model."""
    previous = {name: opts.data[name] for name in p.override_settings if name in opts.data}
    try:
        p.override_settings.pop("sd_model_checkpoint", None)
        for name, value in p.override_settings.items():
            opts.set(name, value, is_api=True, run_callbacks=False)
        yield
    finally:
        if p.override_settings_restore_afterwards:
            for name, value in previous.items():
                setattr(opts, name, value)


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Models processing.process_images: scripts' before_process, the option overrides, the sampler / scheduler name
    fix-up and the selected checkpoint reloaded (after a refiner run), then process_images_inner."""
    if p.scripts is not None:
        p.scripts.before_process(p)
    with _overridden_options(p):
        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        sd_models.reload_model_weights()
        return process_images_inner(p)


def _prepare_job(p: StableDiffusionProcessing) -> None:
    """The start of process_images_inner: refiner checkpoint looked up, defaults for face restoration and tiling,
    model name and hash for the infotext, sampler parameters from options, prompts, and one seed and variation seed
    per image (consecutive from the first; with a variation strength all images share the seed)."""
    assert len(p.prompt) > 0 if isinstance(p.prompt, list) else p.prompt is not None
    devices.torch_gc()

    if p.refiner_checkpoint not in (None, "", "None", "none"):
        p.refiner_checkpoint_info = sd_models.get_closet_checkpoint_match(p.refiner_checkpoint)
        if p.refiner_checkpoint_info is None:
            raise Exception(f"Could not find checkpoint with name {p.refiner_checkpoint}")

    first_seed, first_subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)

    if p.restore_faces is None:
        p.restore_faces = opts.face_restoration
    if p.tiling is None:
        p.tiling = opts.tiling

    checkpoint = getattr(shared.sd_model, "sd_checkpoint_info", None)
    p.sd_model_name = getattr(checkpoint, "name_for_extra", None) or getattr(checkpoint, "model_name", None)
    p.sd_model_hash = getattr(shared.sd_model, "sd_model_hash", None)
    p.sd_vae_name = p.sd_vae_hash = None

    p.fill_fields_from_opts()
    p.setup_prompts()

    count = len(p.all_prompts)
    seed_step = 1 if p.subseed_strength == 0 else 0
    p.all_seeds = (
        first_seed if isinstance(first_seed, list) else [int(first_seed) + i * seed_step for i in range(count)]
    )
    p.all_subseeds = (
        first_subseed if isinstance(first_subseed, list) else [int(first_subseed) + i for i in range(count)]
    )


def _select_batch(p: StableDiffusionProcessing, n: int) -> None:
    """Batch n's prompts, seeds and first-noise generator (latent size from the model's channels and scale)."""
    p.prompts = _batch_slice(p.all_prompts, n, p.batch_size)
    p.negative_prompts = _batch_slice(p.all_negative_prompts, n, p.batch_size)
    p.seeds = _batch_slice(p.all_seeds, n, p.batch_size)
    p.subseeds = _batch_slice(p.all_subseeds, n, p.batch_size)
    scale = latent_scale_factor()
    channels = getattr(shared.sd_model, "latent_channels", opt_C)
    p.rng = rng.ImageRNG(
        (channels, p.height // scale, p.width // scale),
        p.seeds,
        subseeds=p.subseeds,
        subseed_strength=p.subseed_strength,
        seed_resize_from_h=p.seed_resize_from_h,
        seed_resize_from_w=p.seed_resize_from_w,
    )


def _batch_hook(p: StableDiffusionProcessing, hook: str, n: int) -> None:
    if p.scripts is not None:
        getattr(p.scripts, hook)(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)


def _images_from_samples(p: StableDiffusionProcessing, samples) -> torch.Tensor:
    """Sampled latents (after scripts' post_sample) as a float image batch in [0, 1]; a sampler that already
    decoded (the hires pass) is not decoded again."""
    if p.scripts is not None:
        from modules import scripts

        hook = scripts.PostSampleArgs(samples)
        p.scripts.post_sample(p, hook)
        samples = hook.samples
    if not getattr(samples, "already_decoded", False):
        samples = decode_latent_batch(p.sd_model, samples, target_device=devices.cpu, check_for_nans=True)
    return ((torch.stack(list(samples)).float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _postprocess_batch(p: StableDiffusionProcessing, images: torch.Tensor, n: int):
    """Scripts' postprocess_batch then postprocess_batch_list (which may change the list of images); the batch's
    prompts are selected again first, as scripts may have changed them."""
    if p.scripts is None:
        return images
    from modules import scripts

    p.scripts.postprocess_batch(p, images, batch_number=n)
    p.prompts = _batch_slice(p.all_prompts, n, p.batch_size)
    p.negative_prompts = _batch_slice(p.all_negative_prompts, n, p.batch_size)
    hook = scripts.PostprocessBatchListArgs(list(images))
    p.scripts.postprocess_batch_list(p, hook, batch_number=n)
    return hook.images


def _finish_image(p: StableDiffusionProcessing, i: int, image: torch.Tensor) -> torch.Tensor:
    """One image of the batch: scripts' postprocess_image, then the inpainting composite."""
    p.batch_index = i
    if p.scripts is not None:
        from modules import scripts

        hook = scripts.PostprocessImageArgs(image)
        p.scripts.postprocess_image(p, hook)
        image = hook.image
    return composite_over_original(p, i, image)


def _fork_reset_unet(p: StableDiffusionProcessing, to_original: bool = False) -> None:
    """A fork flavour's ``sd_model.forge_objects`` reset (a shallow copy of the loaded or LoRA-applied objects)."""
    from fork_flavour import patcher

    patcher.reset(p.sd_model, to_original)


def _before_every_sampling(p: StableDiffusionProcessing, hires: bool = False, **kwargs: Any) -> None:
    """Scripts' process_before_every_sampling (x, noise, c, uc). Under a fork flavour the unet is reset just
    before it; Forge and Neo call the hook once more before that reset in the hires pass."""
    if fork is not None and hires and fork.hires_hook_twice and p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, **kwargs)
    if fork is not None:
        _fork_reset_unet(p)
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, **kwargs)


def _run_batch(p: StableDiffusionProcessing, n: int) -> tuple[list, list] | None:
    """Batch n of process_images_inner: (images, infotexts), or None when the batch has no prompts. Order of the
    WebUI: before_process_batch, extra networks parsed and activated, process_batch, conds, the infotext once for
    params.txt (first batch), sampling, post_sample, decoding, postprocess hooks, then each image."""
    _select_batch(p, n)
    if fork is not None:
        _fork_reset_unet(p, to_original=True)
    _batch_hook(p, "before_process_batch", n)
    if not p.prompts:
        return None

    p.parse_extra_network_prompts()
    if not p.disable_extra_networks:
        extra_networks.activate(p, p.extra_network_data)
    _batch_hook(p, "process_batch", n)
    p.setup_conds()

    if n == 0:
        Processed(p, []).infotext(p, 0)  # the WebUI writes params.txt from it
    if p.n_iter > 1:
        state.job = f"Batch {n + 1} out of {p.n_iter}"

    samples = p.sample(
        conditioning=p.c,
        unconditional_conditioning=p.uc,
        seeds=p.seeds,
        subseeds=p.subseeds,
        subseed_strength=p.subseed_strength,
        prompts=p.prompts,
    )
    images = _images_from_samples(p, samples)
    state.nextjob()
    images = _postprocess_batch(p, images, n)

    finished, texts = [], []
    for i, image in enumerate(images):
        finished.append(_finish_image(p, i, image))
        texts.append(
            create_infotext(p, p.prompts, p.seeds, p.subseeds, index=i, all_negative_prompts=p.negative_prompts)
        )
    devices.torch_gc()
    return finished, texts


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    """Models processing.process_images_inner: seeds and prompts, scripts' process, p.init, then one batch per
    iteration (see _run_batch) until n_iter or an interrupt / "stop generating"; finally the extra networks are
    deactivated and scripts' postprocess sees the result. An exception propagates (postprocess is then not called);
    an interrupt makes the sampler return its last latent and stops further iterations."""
    _prepare_job(p)
    if p.scripts is not None:
        p.scripts.process(p)

    images: list = []
    infotexts: list = []
    ema_scope = getattr(p.sd_model, "ema_scope", None) or contextlib.nullcontext
    with torch.no_grad(), ema_scope():
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        if state.job_count == -1:
            state.job_count = p.n_iter

        for n in range(p.n_iter):
            p.iteration = n
            state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            batch = _run_batch(p, n)
            if batch is None:
                break
            images += batch[0]
            infotexts += batch[1]

        if not infotexts:
            infotexts.append(Processed(p, []).infotext(p, 0))
        p.color_corrections = None

    result = Processed(
        p,
        images_list=images,
        seed=p.all_seeds[0],
        subseed=p.all_subseeds[0],
        info=infotexts[0],
        infotexts=infotexts,
        index_of_first_image=0,
    )
    if p.extra_network_data and not p.disable_extra_networks:
        extra_networks.deactivate(p, p.extra_network_data)
    if p.scripts is not None:
        p.scripts.postprocess(p, result)
    return result


# --- txt2img --------------------------------------------------------------------------------------------------------


def _image_rng(p: StableDiffusionProcessing, shape) -> rng.ImageRNG:
    """The per-image noise generator of the current batch (seeds, variation seeds, resize-seed-from) for `shape`."""
    return rng.ImageRNG(
        shape,
        p.seeds,
        subseeds=p.subseeds,
        subseed_strength=p.subseed_strength,
        seed_resize_from_h=p.seed_resize_from_h,
        seed_resize_from_w=p.seed_resize_from_w,
    )


def hires_target_size(width: int, height: int, scale: float, resize_x: int, resize_y: int):
    """Models StableDiffusionProcessingTxt2Img.calculate_target_resolution as a pure function: (upscale-to width,
    upscale-to height, excess width, excess height, infotext key, infotext value).

    Without "resize to" the first pass is scaled by `scale`. With one side given the other follows the aspect ratio.
    With both, the picture is scaled to cover the box (fitting the side that leaves the other at least as large)
    and the excess is cut off later."""
    if not resize_x and not resize_y:
        return int(width * scale), int(height * scale), 0, 0, "Hires upscale", scale
    fit_width = (resize_x, resize_x * height // width)
    fit_height = (resize_y * width // height, resize_y)
    if not resize_y:
        chosen = fit_width
    elif not resize_x:
        chosen = fit_height
    else:
        chosen = fit_width if width / height < resize_x / resize_y else fit_height
    excess = (chosen[0] - resize_x, chosen[1] - resize_y) if resize_x and resize_y else (0, 0)
    return chosen[0], chosen[1], excess[0], excess[1], "Hires resize", f"{resize_x}x{resize_y}"


def _hires_prompt_getter(all_name: str, first_pass_name: str):
    """An infotext callable: the image's hires prompt (from the list `all_name` of p) when it differs from the
    first-pass one (the create_infotext local `first_pass_name`)."""

    def value(p, index, **context):
        text = getattr(p, all_name)[index]
        return None if text == context[first_pass_name] else text

    return value


def _centre_crop_latent(samples: torch.Tensor, excess_x: int, excess_y: int) -> torch.Tensor:
    """Cuts `excess` latent cells off the upscaled latent, half on each side (the odd one at the end)."""
    height, width = samples.shape[2], samples.shape[3]
    rows = slice(excess_y // 2, height - (excess_y + 1) // 2)
    cols = slice(excess_x // 2, width - (excess_x + 1) // 2)
    return samples[:, :, rows, cols]


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """Models processing.StableDiffusionProcessingTxt2Img (latent upscalers only for the hires fix)."""

    FIELDS: dict = {
        "enable_hr": False,
        "denoising_strength": 0.75,
        "firstphase_width": 0,
        "firstphase_height": 0,
        "hr_scale": 2.0,
        "hr_upscaler": None,
        "hr_second_pass_steps": 0,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
        "hr_checkpoint_name": None,
        "hr_sampler_name": None,
        "hr_scheduler": None,
        "hr_prompt": "",
        "hr_negative_prompt": "",
        "force_task_id": None,
    }

    cached_hr_uc: list = [None, None]
    cached_hr_c: list = [None, None]

    def initial_state(self) -> dict:
        return {
            "hr_checkpoint_info": None,
            "hr_upscale_to_x": 0,
            "hr_upscale_to_y": 0,
            "truncate_x": 0,
            "truncate_y": 0,
            "applied_old_hires_behavior_to": None,
            "latent_scale_mode": None,
            "hr_c": None,
            "hr_uc": None,
            "all_hr_prompts": [],
            "all_hr_negative_prompts": [],
            "hr_prompts": [],
            "hr_negative_prompts": [],
            "hr_extra_network_data": {},
        }

    def __post_init__(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.__post_init__: also shares the class-level hires cond caches."""
        super().__post_init__()
        self.cached_hr_c = StableDiffusionProcessingTxt2Img.cached_hr_c
        self.cached_hr_uc = StableDiffusionProcessingTxt2Img.cached_hr_uc

    def calculate_target_resolution(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.calculate_target_resolution (see hires_target_size)."""
        to_x, to_y, excess_x, excess_y, key, value = hires_target_size(
            self.width, self.height, self.hr_scale, self.hr_resize_x, self.hr_resize_y
        )
        self.extra_generation_params[key] = value
        self.hr_upscale_to_x, self.hr_upscale_to_y = to_x, to_y
        if self.hr_resize_x and self.hr_resize_y:
            scale = latent_scale_factor()
            self.truncate_x, self.truncate_y = excess_x // scale, excess_y // scale

    def _hires_upscale_mode(self):
        """The latent upscale mode of hr_upscaler (the default latent mode when none is named); an upscaler that is
        neither a latent mode nor a known upscaler is an error."""
        modes = shared.latent_upscale_modes
        if self.hr_upscaler is None:
            return modes.get(shared.latent_upscale_default_mode, "nearest")
        mode = modes.get(self.hr_upscaler)
        if mode is None and all(upscaler.name != self.hr_upscaler for upscaler in shared.sd_upscalers):
            raise Exception(f"could not find upscaler named {self.hr_upscaler}")
        return mode

    def init(self, all_prompts, all_seeds, all_subseeds) -> None:
        """Models StableDiffusionProcessingTxt2Img.init: with the hires fix, its infotext fields (in the WebUI's
        order), the hires scheduler defaulting to the first pass's, the upscale mode and target size, and twice the
        job count for the progress bar."""
        if not self.enable_hr:
            return
        params = self.extra_generation_params
        params["Denoising strength"] = self.denoising_strength

        if self.hr_checkpoint_name not in (None, "", "Use same checkpoint"):
            raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")

        if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
            params["Hires sampler"] = self.hr_sampler_name
        params["Hires prompt"] = _hires_prompt_getter("all_hr_prompts", "prompt_text")
        params["Hires negative prompt"] = _hires_prompt_getter("all_hr_negative_prompts", "negative_prompt")
        params["Hires schedule type"] = None  # filled in by the k-diffusion sampler of the hires pass
        self.hr_scheduler = self.scheduler if self.hr_scheduler is None else self.hr_scheduler

        self.latent_scale_mode = self._hires_upscale_mode()
        self.calculate_target_resolution()

        if not state.processing_has_refined_job_count:
            state.job_count = (self.n_iter if state.job_count == -1 else state.job_count) * 2
            state.processing_has_refined_job_count = True

        if self.hr_second_pass_steps:
            params["Hires steps"] = self.hr_second_pass_steps
        if self.hr_upscaler is not None:
            params["Hires upscaler"] = self.hr_upscaler

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """Models StableDiffusionProcessingTxt2Img.sample: the first pass from the batch's noise (scripts'
        process_before_every_sampling first), then, with the hires fix, sample_hr_pass."""
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        noise = self.rng.next()
        _before_every_sampling(self, x=noise, noise=noise, c=conditioning, uc=unconditional_conditioning)
        latents = self.sampler.sample(
            self,
            noise,
            conditioning,
            unconditional_conditioning,
            image_conditioning=self.txt2img_image_conditioning(noise),
        )
        if not self.enable_hr:
            return latents
        devices.torch_gc()
        return self.sample_hr_pass(latents, None, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        """Models StableDiffusionProcessingTxt2Img.sample_hr_pass with a latent upscaler: skipped after an interrupt;
        otherwise is_hr_pass is set, the latents are upscaled to the target size, a new sampler (hires sampler or the
        first pass's) is created, the image conditioning is made (an inpainting UNet gets the whole-picture one, or
        with a mask weight below 1 the upscaled picture itself), the excess of "resize to" is cut off, fresh noise
        is drawn from the batch's seeds, the hires extra networks are activated and the hires conds computed, scripts
        see before_hr and process_before_every_sampling, and sample_img2img runs hr_second_pass_steps (or steps).
        Returns the decoded images (already_decoded)."""
        if state.interrupted:
            return samples

        self.is_hr_pass = True
        scale = latent_scale_factor()
        samples = torch.nn.functional.interpolate(
            samples,
            size=(self.hr_upscale_to_y // scale, self.hr_upscale_to_x // scale),
            mode=self.latent_scale_mode["mode"],
            antialias=self.latent_scale_mode["antialias"],
        )
        state.nextjob()

        self.sampler = sd_samplers.create_sampler(self.hr_sampler_name or self.sampler_name, self.sd_model)
        if getattr(self, "inpainting_mask_weight", opts.inpainting_mask_weight) < 1.0:
            pictures = decode_first_stage(self.sd_model, samples)
            image_conditioning = self.img2img_image_conditioning(pictures, samples)
        else:
            image_conditioning = self.txt2img_image_conditioning(samples)

        samples = _centre_crop_latent(samples, self.truncate_x, self.truncate_y)
        self.rng = _image_rng(self, samples.shape[1:])
        noise = self.rng.next()
        devices.torch_gc()

        if not self.disable_extra_networks:
            extra_networks.activate(self, self.hr_extra_network_data)
        with devices.autocast():
            self.calculate_hr_conds()
        if self.scripts is not None:
            self.scripts.before_hr(self)
        _before_every_sampling(self, hires=True, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)

        steps = self.hr_second_pass_steps or self.steps
        latents = self.sampler.sample_img2img(
            self, samples, noise, self.hr_c, self.hr_uc, steps=steps, image_conditioning=image_conditioning
        )
        self.sampler = None
        devices.torch_gc()
        decoded = decode_latent_batch(self.sd_model, latents, target_device=devices.cpu, check_for_nans=True)
        self.is_hr_pass = False
        return decoded

    def close(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.close: the base class's, plus the hires conds and caches."""
        super().close()
        self.hr_c = self.hr_uc = None
        _reset_class_caches(StableDiffusionProcessingTxt2Img, "cached_hr_c", "cached_hr_uc")

    def setup_prompts(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.setup_prompts: with the hires fix, hires prompts per image too
        (an empty hires prompt means the first pass's), styles applied."""
        super().setup_prompts()
        if not self.enable_hr:
            return
        self.hr_prompt = self.prompt if self.hr_prompt == "" else self.hr_prompt
        self.hr_negative_prompt = self.negative_prompt if self.hr_negative_prompt == "" else self.hr_negative_prompt
        count = self.batch_size * self.n_iter
        self.all_hr_prompts = _with_styles(_per_image(self.hr_prompt, count), self.styles)
        self.all_hr_negative_prompts = _with_styles(
            _per_image(self.hr_negative_prompt, count), self.styles, negative=True
        )

    def calculate_hr_conds(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.calculate_hr_conds: conds at the hires size, looked up in the
        hires caches and then the first pass's, with hires_steps = total steps of the hires sampler (so prompt
        editing times count within the second pass). Kept until setup_conds clears them."""
        if self.hr_c is not None:
            return
        config = sd_samplers.find_sampler_config(self.hr_sampler_name or self.sampler_name)
        steps = self.hr_second_pass_steps or self.steps
        hires_total = config.total_steps(steps) if config else steps
        self.hr_c, self.hr_uc = self._encode_pass_conds(
            self.hr_prompts,
            self.hr_negative_prompts,
            (self.hr_upscale_to_x, self.hr_upscale_to_y),
            self.firstpass_steps,
            ([self.cached_hr_uc, self.cached_uc], [self.cached_hr_c, self.cached_c]),
            self.hr_extra_network_data,
            hires_total,
        )

    def setup_conds(self) -> None:
        """Models StableDiffusionProcessingTxt2Img.setup_conds: during the hires pass only the hires conds are
        recomputed; otherwise the first pass's, and the hires ones too when the option "hires_fix_use_firstpass_conds"
        asks for them up front (not with a hires checkpoint)."""
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_c = self.hr_uc = None
        wants_early = self.enable_hr and self.hr_checkpoint_info is None and shared.opts.hires_fix_use_firstpass_conds
        if wants_early:
            self.calculate_hr_conds()

    def get_conds(self):
        """Models StableDiffusionProcessingTxt2Img.get_conds: the hires conds during the hires pass."""
        return (self.hr_c, self.hr_uc) if self.is_hr_pass else super().get_conds()

    def parse_extra_network_prompts(self):
        """Models StableDiffusionProcessingTxt2Img.parse_extra_network_prompts: the batch's hires prompts lose their
        extra-network tags too (kept in hr_extra_network_data)."""
        found = super().parse_extra_network_prompts()
        if self.enable_hr:
            self.hr_prompts = _batch_slice(self.all_hr_prompts, self.iteration, self.batch_size)
            self.hr_negative_prompts = _batch_slice(self.all_hr_negative_prompts, self.iteration, self.batch_size)
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(self.hr_prompts)
        return found


# --- img2img --------------------------------------------------------------------------------------------------------


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """Models processing.StableDiffusionProcessingImg2Img, inpainting included. Stand-in differences: init_images
    may be [3, H, W] float tensors in [0, 1], PIL images or HxWx3 uint8 arrays, and are resized plainly (no crop/fill
    resize modes, no latent-upscale mode 3); the mask (`mask=`) may be a PIL image, a uint8 array or a tensor in
    [0, 1]; images and masks are tensors/uint8 arrays instead of PIL images (see modules/masking.py)."""

    FIELDS: dict = {
        "init_images": None,
        "resize_mode": 0,
        "denoising_strength": 0.75,
        "image_cfg_scale": None,
        "initial_noise_multiplier": None,
        # inpainting
        "mask": None,
        "latent_mask": None,
        "mask_round": True,
        "inpainting_mask_invert": 0,
        "inpainting_fill": 0,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 0,
        "mask_blur_x": 4,
        "mask_blur_y": 4,
        "mask_blur": None,  # after the two above: an int sets both directions
        "force_task_id": None,
    }

    def initial_state(self) -> dict:
        return {
            "image_mask": None,
            "mask_for_overlay": None,
            "nmask": None,
            "init_latent": None,
            "image_conditioning": None,
            "init_img_hash": None,
        }

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
        """Models StableDiffusionProcessingImg2Img.sample: the batch's noise, scaled by the initial noise multiplier
        (recorded when not 1), goes with the initial latent to sample_img2img (scripts' process_before_every_sampling
        first); with a mask the final blend follows (final_mask_blend)."""
        noise = self.rng.next()
        multiplier = self.initial_noise_multiplier
        if multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = multiplier
            noise *= multiplier
        _before_every_sampling(self, x=self.init_latent, noise=noise, c=conditioning, uc=unconditional_conditioning)
        latents = self.sampler.sample_img2img(
            self,
            self.init_latent,
            noise,
            conditioning,
            unconditional_conditioning,
            image_conditioning=self.image_conditioning,
        )
        devices.torch_gc()
        return latents if self.mask is None else self.final_mask_blend(latents)

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
        """Models StableDiffusionProcessingImg2Img.get_token_merging_ratio: the request's ratio, an overridden
        option's, the img2img option's, then the general option's."""
        overridden = "token_merging_ratio" in self.override_settings and opts.token_merging_ratio
        return _first_truthy(
            self.token_merging_ratio, overridden, opts.token_merging_ratio_img2img, opts.token_merging_ratio
        )
