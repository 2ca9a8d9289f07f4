"""A random (untrained) SDXL-refiner-shaped checkpoint for the real-WebUI tier (issue 30).

Built from generative-models ``configs/inference/sd_xl_refiner.yaml`` (the WebUI's ``repositories/``), one part at a
time (text encoder, VAE, denoiser, UNet) so that at most one large module is alive, and saved as fp16 safetensors
under the key names of ``sd_xl_refiner_1.0.safetensors``: ``conditioner.embedders.0.model.*`` (OpenCLIP ViT-bigG,
the only text encoder; v1.10.1's ``sd_models_config.guess_model_config_from_state_dict`` picks the refiner config by
``conditioner.embedders.0.model.ln_final.weight``), ``first_stage_model.*``, ``denoiser.*``,
``model.diffusion_model.*``. Nothing is downloaded: open_clip builds the architecture with ``pretrained=None``.
The UNet's zero-initialised output projections get small random values, so the refiner's output depends on its
conditioning (a zero projection would make every row look alike).

    FIXTURE=/root/real-webui-fixture $FIXTURE/venv/bin/python webui_tier/tools/make_random_sdxl_refiner.py [OUT]

OUT defaults to ``$FIXTURE/extra-models/random-sdxl-refiner.safetensors``; link it into
``webui/models/Stable-diffusion/`` as ``random-sdxl-refiner.safetensors`` (the scenarios name it so). About 6.1 GB,
peak memory 12.4 GB, 96 s on 2 CPU cores (2026-12-06: 6,075,948,224 bytes, 3,037,841,364 parameters).
"""

from __future__ import annotations

import gc
import os
import sys
import time


def main() -> None:
    fixture = os.environ.get("FIXTURE", os.path.expanduser("~/real-webui-fixture"))
    webui = os.path.join(fixture, "webui")
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(fixture, "extra-models", "random-sdxl-refiner.safetensors")
    sys.path.insert(0, os.path.join(webui, "repositories", "generative-models"))

    import open_clip
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    create = open_clip.create_model_and_transforms

    def without_weights(arch, *args, **kwargs):
        kwargs["pretrained"] = None  # the architecture only: never fetch laion weights
        return create(arch, *args, **kwargs)

    open_clip.create_model_and_transforms = without_weights
    from sgm.util import instantiate_from_config

    torch.manual_seed(8765)
    config_path = os.path.join(webui, "repositories", "generative-models", "configs", "inference", "sd_xl_refiner.yaml")
    params = OmegaConf.load(config_path).model.params
    state: dict[str, torch.Tensor] = {}

    def keep(prefix: str, module: torch.nn.Module, to_half: bool = True) -> None:
        for key, value in module.state_dict().items():
            value = value.detach()
            if to_half and value.is_floating_point():
                value = value.half()
            state[prefix + key] = value.contiguous()

    for prefix, key, to_half in (
        ("conditioner.", "conditioner_config", True),
        ("first_stage_model.", "first_stage_config", True),
        ("denoiser.", "denoiser_config", False),  # the sigmas stay float32, as in the released file
    ):
        started = time.time()
        part = instantiate_from_config(params[key])
        keep(prefix, part, to_half)
        del part
        gc.collect()
        print(f"{prefix} {time.time() - started:.0f} s, {len(state)} keys so far", flush=True)

    started = time.time()
    unet = instantiate_from_config(params.network_config)
    refilled = 0
    with torch.no_grad():
        for param in unet.parameters():
            if param.ndim >= 2 and not bool(param.any()):  # zero_module(...) projections
                fan_in = param[0].numel()
                param.normal_(0.0, 0.5 / fan_in**0.5)
                refilled += 1
            param.data = param.data.half()
    keep("model.diffusion_model.", unet, to_half=False)
    del unet
    gc.collect()
    print(f"unet {time.time() - started:.0f} s, {refilled} zero weights refilled", flush=True)

    for key in (
        "conditioner.embedders.0.model.ln_final.weight",
        "model.diffusion_model.label_emb.0.0.weight",
        "model.diffusion_model.input_blocks.0.0.weight",
    ):
        print(key, tuple(state[key].shape))
    assert "conditioner.embedders.1.model.ln_final.weight" not in state, "that key would make the WebUI load a base"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    save_file(state, out, metadata={"format": "pt", "note": "random untrained SDXL-refiner-shaped weights (fixture)"})
    print("saved", out, os.path.getsize(out), "bytes,", sum(v.numel() for v in state.values()), "parameters")


if __name__ == "__main__":
    main()
