"""Stand-in for modules/shared.py (+ the defaults of modules/shared_options.py and modules/shared_state.py)."""

from __future__ import annotations

import time
import types
from typing import Any

from modules import devices
from modules.options import OptionHTML, OptionInfo, Options, options_section  # noqa: F401  (re-exported like the WebUI)

cmd_opts = types.SimpleNamespace(
    hide_ui_dir_config=True,
    no_prompt_history=True,
    api=True,
    nowebui=False,
    disable_nan_check=True,
    lowvram=False,
    medvram=False,
    embeddings_dir="",
    disable_extension_access=False,
)
"""mirrors modules/shared.py cmd_opts (the parsed command line) with the values a test run needs."""

parallel_processing_allowed = True
demo = None
device = devices.device
weight_load_location = None
sd_upscalers: list = []
face_restorers: list = []

latent_upscale_default_mode = "Latent"
# mirrors modules/shared.py latent_upscale_modes: label -> torch interpolation mode and antialiasing
latent_upscale_modes = {
    label: {"mode": mode, "antialias": antialias}
    for label, mode, antialias in (
        ("Latent", "bilinear", False),
        ("Latent (antialiased)", "bilinear", True),
        ("Latent (bicubic)", "bicubic", False),
        ("Latent (bicubic antialiased)", "bicubic", True),
        ("Latent (nearest)", "nearest", False),
        ("Latent (nearest-exact)", "nearest-exact", False),
    )
}

sd_model: Any = None
"""mirrors shared.sd_model (a property over sd_models.model_data in the WebUI); the harness sets it."""


def _default_options() -> dict[str, OptionInfo]:
    """mirrors the option templates of modules/shared_options.py that the stand-in's code paths read."""
    o = OptionInfo
    return {
        # optimizations section
        "pad_cond_uncond": o(False, "Pad prompt/negative prompt", infotext="Pad conds"),
        "pad_cond_uncond_v0": o(False, "Pad prompt/negative prompt (v0)", infotext="Pad conds v0"),
        "batch_cond_uncond": o(True, "Batch cond/uncond"),
        "persistent_cond_cache": o(True, "Persistent cond cache"),
        "skip_early_cond": o(0.0, "Ignore negative prompt during early sampling", infotext="Skip Early CFG"),
        "s_min_uncond": o(0.0, "Negative Guidance minimum sigma", infotext="NGMS"),
        "s_min_uncond_all": o(False, "Negative Guidance minimum sigma all steps", infotext="NGMS all steps"),
        "token_merging_ratio": o(0.0, "Token merging ratio", infotext="Token merging ratio"),
        "token_merging_ratio_img2img": o(0.0, "Token merging ratio for img2img"),
        "token_merging_ratio_hr": o(0.0, "Token merging ratio for high-res pass", infotext="Token merging ratio hr"),
        # img2img / sd / sdxl
        "img2img_fix_steps": o(False, "With img2img, do exactly the amount of steps the slider specifies"),
        "img2img_extra_noise": o(0.0, "Extra noise multiplier for img2img and hires fix", infotext="Extra noise"),
        "initial_noise_multiplier": o(1.0, "Noise multiplier for img2img"),
        "inpainting_mask_weight": o(1.0, "Inpainting conditioning mask strength", infotext="Conditional mask weight"),
        "overlay_inpaint": o(True, "Overlay original for inpaint"),
        "sd_model_checkpoint": o(None, "Stable Diffusion checkpoint", infotext="Model hash"),
        "sd_vae": o("Automatic", "SD VAE", infotext="VAE"),
        "sd_vae_encode_method": o("Full", "VAE type for encode", infotext="VAE Encoder"),
        "sd_vae_decode_method": o("Full", "VAE type for decode", infotext="VAE Decoder"),
        "CLIP_stop_at_last_layers": o(1, "Clip skip", infotext="Clip skip"),
        "emphasis": o("Original", "Emphasis mode", infotext="Emphasis"),
        "use_old_scheduling": o(False, "Use old prompt editing timelines", infotext="Old prompt editing timelines"),
        "sdxl_crop_top": o(0, "crop top coordinate"),
        "sdxl_crop_left": o(0, "crop left coordinate"),
        "sdxl_refiner_low_aesthetic_score": o(2.5, "SDXL low aesthetic score"),
        "sdxl_refiner_high_aesthetic_score": o(6.0, "SDXL high aesthetic score"),
        "hires_fix_use_firstpass_conds": o(False, "For hires fix, calculate conds of second pass using first pass"),
        "hires_fix_refiner_pass": o("second pass", "Hires fix: which pass to enable refiner for"),
        "use_old_hires_fix_width_height": o(False, "old hires fix width/height behaviour"),
        "refiner_switch_by_sample_steps": o(False, "Refiner switch by sampling steps"),
        "enable_quantization": o(False, "Enable quantization in K samplers"),
        "randn_source": o("GPU", "Random number generator source.", infotext="RNG"),
        "tiling": o(False, "Tiling"),
        "face_restoration": o(False, "Restore faces"),
        "face_restoration_model": o("CodeFormer", "Face restoration model"),
        # sampler parameters section
        "eta_ddim": o(0.0, "Eta for DDIM", infotext="Eta DDIM"),
        "eta_ancestral": o(1.0, "Eta for k-diffusion samplers", infotext="Eta"),
        "ddim_discretize": o("uniform", "img2img DDIM discretize"),
        "s_churn": o(0.0, "sigma churn", infotext="Sigma churn"),
        "s_tmin": o(0.0, "sigma tmin", infotext="Sigma tmin"),
        "s_tmax": o(0.0, "sigma tmax", infotext="Sigma tmax"),
        "s_noise": o(1.0, "sigma noise", infotext="Sigma noise"),
        "sigma_min": o(0.0, "sigma min", infotext="Schedule min sigma"),
        "sigma_max": o(0.0, "sigma max", infotext="Schedule max sigma"),
        "rho": o(0.0, "rho", infotext="Schedule rho"),
        "eta_noise_seed_delta": o(0, "Eta noise seed delta", infotext="ENSD"),
        "always_discard_next_to_last_sigma": o(
            False, "Always discard next-to-last sigma", infotext="Discard penultimate sigma"
        ),
        "sgm_noise_multiplier": o(False, "SGM noise multiplier", infotext="SGM noise multiplier"),
        "uni_pc_variant": o("bh1", "UniPC variant"),
        "uni_pc_skip_type": o("time_uniform", "UniPC skip type"),
        "uni_pc_order": o(3, "UniPC order"),
        "uni_pc_lower_order_final": o(True, "UniPC lower order final"),
        "beta_dist_alpha": o(0.6, "Beta scheduler - alpha", infotext="Beta scheduler alpha"),
        "beta_dist_beta": o(0.6, "Beta scheduler - beta", infotext="Beta scheduler beta"),
        "use_old_karras_scheduler_sigmas": o(False, "Use old karras scheduler sigmas (0.1 to 10)."),
        "no_dpmpp_sde_batch_determinism": o(False, "Do not make DPM++ SDE deterministic across batch sizes."),
        "hide_samplers": o([], "Hide samplers in user interface"),
        # live previews
        "live_previews_enable": o(False, "Show live previews of the created image"),
        "show_progress_every_n_steps": o(10, "Live preview display period"),
        "show_progress_type": o("Approx NN", "Live preview method"),
        "live_preview_content": o("Prompt", "Live preview subject"),
        "live_preview_fast_interrupt": o(False, "Return image with chosen live preview method on interrupt"),
        # infotext / ui
        "add_model_hash_to_info": o(True, "Add model hash to infotext"),
        "add_model_name_to_info": o(True, "Add model name to infotext"),
        "add_user_name_to_info": o(False, "Add user name to infotext when authenticated"),
        "add_version_to_infotext": o(True, "Add program version to infotext"),
        "add_vae_name_to_info": o(True, "Add VAE name to infotext"),
        "add_vae_hash_to_info": o(True, "Add VAE hash to infotext"),
        "disable_weights_auto_swap": o(True, "Ignore selected VAE/checkpoint in pasted infotext"),
        "infotext_skip_pasting": o([], "Disregard fields from pasted infotext"),
        "infotext_styles": o("Apply if any", "Infer styles from prompts of pasted infotext"),
        "send_seed": o(True, "Send seed when sending prompt or image to other interface"),
        "send_size": o(True, "Send size when sending prompt or image to another interface"),
        "return_grid": o(True, "Show grid in gallery"),
        "grid_save": o(False, "Always save all generated image grids"),
        "grid_format": o("png", "File format for grids"),
        "samples_save": o(False, "Always save all generated images"),
        "img_max_size_mp": o(200, "Maximum grid size (in megapixels)"),
        "enable_console_prompts": o(False, "Print prompts to console"),
        "enable_pnginfo": o(True, "Write infotext to metadata of the generated image"),
        "outdir_txt2img_samples": o("", "Output directory for txt2img images"),
        "outdir_img2img_samples": o("", "Output directory for img2img images"),
        "outdir_txt2img_grids": o("", "Output directory for txt2img grids"),
        "outdir_img2img_grids": o("", "Output directory for img2img grids"),
    }


opts = Options(_default_options())
"""mirrors shared.opts (modules/shared.py opts = options.Options(...))."""


# What State.begin resets at the start of a job (the job name and its start time are set besides).
_STATE_AT_JOB_START: dict[str, Any] = {
    "sampling_step": 0,
    "job_count": -1,
    "processing_has_refined_job_count": False,
    "job_no": 0,
    "current_latent": None,
    "current_image": None,
    "current_image_sampling_step": 0,
    "id_live_preview": 0,
    "skipped": False,
    "interrupted": False,
    "stopping_generation": False,
    "textinfo": None,
}

# The fields State.dict reports (the progress API's view).
_STATE_REPORTED = (
    "skipped",
    "interrupted",
    "stopping_generation",
    "job",
    "job_count",
    "job_timestamp",
    "job_no",
    "sampling_step",
    "sampling_steps",
)


class State:
    """Models modules/shared_state.py State: the progress of the current job and the user's interrupt/skip/stop
    requests, which the processing loop reads."""

    def __init__(self) -> None:
        vars(self).update(_STATE_AT_JOB_START)
        self.job, self.job_count, self.job_timestamp = "", 0, "0"
        self.sampling_steps = 0
        self.time_start: float | None = None
        self.server_start = time.time()
        self.server_command = None
        self.xyz_plot_x = self.xyz_plot_y = self.xyz_plot_z = None

    def interrupt(self) -> None:
        """Models State.interrupt: the job stops after the current step."""
        self.interrupted = True

    def skip(self) -> None:
        """Models State.skip: the current image is skipped."""
        self.skipped = True

    def stop_generating(self) -> None:
        """Models State.stop_generating."""
        self.stopping_generation = True

    def nextjob(self) -> None:
        """Models State.nextjob: the next batch's job starts counting steps from 0."""
        self.job_no += 1
        self.sampling_step = self.current_image_sampling_step = 0

    def dict(self) -> dict[str, Any]:
        """Models State.dict."""
        return {name: getattr(self, name) for name in _STATE_REPORTED}

    def begin(self, job: str = "(unknown)") -> None:
        """Models State.begin: progress and requests reset, the job named and timed."""
        vars(self).update(_STATE_AT_JOB_START)
        self.time_start = time.time()
        self.job = job

    def end(self) -> None:
        """Models State.end."""
        self.job, self.job_count = "", 0

    def set_current_image(self) -> None:
        """Models State.set_current_image (no previews in the stand-in)."""

    def assign_current_image(self, image) -> None:
        """Models State.assign_current_image."""
        self.current_image = image


state = State()


class TotalTQDM:
    """mirrors modules/shared_total_tqdm.py TotalTQDM (no-op)."""

    def reset(self) -> None:
        pass

    def update(self) -> None:
        pass

    def updateTotal(self, new_total: int) -> None:  # noqa: N802  (real method name)
        pass

    def clear(self) -> None:
        pass


total_tqdm = TotalTQDM()


class _PromptStyles:
    """mirrors modules/styles.py StyleDatabase with no styles defined."""

    styles: dict = {}

    def apply_styles_to_prompt(self, prompt: str, styles: list) -> str:
        return prompt

    def apply_negative_styles_to_prompt(self, prompt: str, styles: list) -> str:
        return prompt

    def extract_styles_from_prompt(self, prompt: str, negative_prompt: str) -> tuple[list, str, str]:
        return [], prompt, negative_prompt


prompt_styles = _PromptStyles()


def reload_hypernetworks() -> None:  # mirrors shared.reload_hypernetworks
    pass


def reset_state() -> None:
    """Stand-in only: resets opts to the registered defaults (keeps extension-registered options) and the state."""
    for key, info in opts.data_labels.items():
        if not info.do_not_save:
            opts.data[key] = info.default
    for key in [k for k in opts.data if k not in opts.data_labels]:
        del opts.data[key]
    state.__init__()
