"""Stand-in for modules/api/models.py (pydantic v1 models the stand-in uses)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field


class ScriptArg(BaseModel):
    """mirrors api.models.ScriptArg"""

    label: str = Field(default=None, title="Label", description="Name of the argument in UI")
    value: Optional[Any] = Field(default=None, title="Value", description="Default value of the argument")  # noqa: UP045
    minimum: Optional[Any] = Field(default=None, title="Minimum")  # noqa: UP045
    maximum: Optional[Any] = Field(default=None, title="Maximum")  # noqa: UP045
    step: Optional[Any] = Field(default=None, title="Step")  # noqa: UP045
    choices: Optional[list[str]] = Field(default=None, title="Choices")  # noqa: UP045


class ScriptInfo(BaseModel):
    """mirrors api.models.ScriptInfo"""

    name: str = Field(default=None, title="Name")
    is_alwayson: bool = Field(default=None, title="IsAlwayson")
    is_img2img: bool = Field(default=None, title="IsImg2img")
    args: list[ScriptArg] = Field(title="Arguments")


class _ProcessingAPIBase(BaseModel):
    """mirrors the generated StableDiffusion*ProcessingAPI request models (the fields the stand-in needs)."""

    # what to draw, at which size
    prompt: str = ""
    negative_prompt: str = ""
    styles: Optional[list[str]] = None  # noqa: UP045
    width: int = 512
    height: int = 512
    # how many: images per batch, batches
    batch_size: int = 1
    n_iter: int = 1
    # seeds
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    # sampling
    sampler_name: Optional[str] = None  # noqa: UP045
    sampler_index: str = "Euler"
    scheduler: Optional[str] = None  # noqa: UP045
    steps: int = 50
    cfg_scale: float = 7.0
    eta: Optional[float] = None  # noqa: UP045
    s_min_uncond: Optional[float] = None  # noqa: UP045
    override_settings: Optional[dict[str, Any]] = None  # noqa: UP045
    refiner_checkpoint: Optional[str] = None  # noqa: UP045
    refiner_switch_at: Optional[float] = None  # noqa: UP045
    override_settings_restore_afterwards: bool = True
    script_name: Optional[str] = None  # noqa: UP045
    script_args: list = []
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict = {}
    infotext: Optional[str] = None  # noqa: UP045
    force_task_id: Optional[str] = None  # noqa: UP045


class StableDiffusionTxt2ImgProcessingAPI(_ProcessingAPIBase):
    """mirrors api.models.StableDiffusionTxt2ImgProcessingAPI"""

    enable_hr: bool = False
    denoising_strength: Optional[float] = None  # noqa: UP045
    hr_scale: float = 2.0
    hr_upscaler: Optional[str] = None  # noqa: UP045
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_sampler_name: Optional[str] = None  # noqa: UP045
    hr_scheduler: Optional[str] = None  # noqa: UP045
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    # the forks' request models add the hires CFG scale (docs/forks.md §2); absent means the fork's default
    hr_cfg: Optional[float] = None  # noqa: UP045  Forge, Neo, reForge
    hr_cfg_scale: Optional[float] = None  # noqa: UP045  Forge Classic


class StableDiffusionImg2ImgProcessingAPI(_ProcessingAPIBase):
    """mirrors api.models.StableDiffusionImg2ImgProcessingAPI (init_images are tensors/PIL images here)."""

    init_images: Optional[list] = None  # noqa: UP045
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: Optional[float] = None  # noqa: UP045
    # inpainting: the request model's fields from StableDiffusionProcessingImg2Img, with its defaults (the mask is a
    # tensor / PIL image / 8-bit array here; the real API decodes a base64 image)
    mask: Optional[Any] = None  # noqa: UP045
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: Optional[int] = None  # noqa: UP045
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: Optional[float] = None  # noqa: UP045
    include_init_images: bool = False

    class Config:
        arbitrary_types_allowed = True
