"""Make the second checkpoint and the LoRA the refiner and LoRA scenarios need, next to a fixture's SD1.5 checkpoint.

    <fixture venv python> webui_tier/tools/make_fixture_networks.py WEBUI_DIR [BASE_CHECKPOINT_NAME]

- ``models/Stable-diffusion/<base>-refiner.safetensors``: the base checkpoint with its text encoder's token
  embeddings (and one UNet tensor) perturbed by fixed-seed noise, so its empty prompt encodes differently and the
  file has another hash.
- ``models/Lora/npd-test.safetensors``: a rank-4 LoRA (kohya key names) on the MLP of the text encoder's 12
  layers, so ``<lora:npd-test:0.8>`` changes every prompt's encoding, the empty one included.
Both are test data for random-weight fixtures, written with safetensors; nothing is downloaded.
"""

from __future__ import annotations

import os
import sys

import torch
from safetensors.torch import load_file, save_file


def make_refiner(base: str, out: str) -> None:
    sd = load_file(base)
    g = torch.Generator().manual_seed(4321)
    for key in (
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        "model.diffusion_model.out.2.weight",
    ):
        v = sd[key].float()
        sd[key] = (v + 0.5 * v.std() * torch.randn(v.shape, generator=g)).to(sd[key].dtype).contiguous()
    save_file(sd, out, metadata={"format": "pt", "note": "random SD1.5 test checkpoint, perturbed text encoder"})


def make_lora(out: str, rank: int = 4) -> None:
    g = torch.Generator().manual_seed(99)
    sd = {}
    for layer in range(12):
        base = f"lora_te_text_model_encoder_layers_{layer}_mlp_fc1"
        sd[f"{base}.lora_down.weight"] = (torch.randn(rank, 768, generator=g) * 0.05).half()
        sd[f"{base}.lora_up.weight"] = (torch.randn(3072, rank, generator=g) * 0.05).half()
        sd[f"{base}.alpha"] = torch.tensor(float(rank)).half()
    save_file(sd, out, metadata={"ss_network_module": "networks.lora", "note": "random test LoRA"})


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    webui = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else "random-sd15"
    ckpt_dir = os.path.join(webui, "models", "Stable-diffusion")
    base = os.path.join(ckpt_dir, f"{name}.safetensors")
    refiner = os.path.join(ckpt_dir, f"{name}-refiner.safetensors")
    if not os.path.exists(refiner):
        make_refiner(base, refiner)
    print("refiner checkpoint:", refiner)
    lora_dir = os.path.join(webui, "models", "Lora")
    os.makedirs(lora_dir, exist_ok=True)
    lora = os.path.join(lora_dir, "npd-test.safetensors")
    if not os.path.exists(lora):
        make_lora(lora)
    print("LoRA:", lora)


if __name__ == "__main__":
    main()
