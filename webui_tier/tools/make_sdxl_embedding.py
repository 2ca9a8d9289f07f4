"""A random SDXL textual-inversion embedding for the real-WebUI tier's ``sdxl-long-negative-embedding`` scenario.

AUTOMATIC1111 v1.10.1 (modules/textual_inversion/textual_inversion.py ``create_embedding_from_data``) takes a file
holding the two tensors ``clip_l`` [n, 768] and ``clip_g`` [n, 1280] as an SDXL embedding of n vectors (its shape
768 + 1280 = 2048, what the SDXL conditioner's ``encode_embedding_init_text`` gives, so it loads while an SDXL base is
selected and is skipped for other models); each text encoder reads its own tensor. The prompt names it by its file
name: ``npd-sdxl-emb``.

    $FIXTURE/venv/bin/python webui_tier/tools/make_sdxl_embedding.py $FIXTURE/webui/embeddings

Eight vectors of N(0, 0.02) (about the spread of CLIP's token embeddings), seed 30; a few kilobytes.
"""

from __future__ import annotations

import os
import sys

NAME = "npd-sdxl-emb"
VECTORS = 8


def main() -> None:
    import torch
    from safetensors.torch import save_file

    folder = sys.argv[1] if len(sys.argv) > 1 else "embeddings"
    os.makedirs(folder, exist_ok=True)
    g = torch.Generator().manual_seed(30)
    tensors = {
        "clip_l": (torch.randn(VECTORS, 768, generator=g) * 0.02).contiguous(),
        "clip_g": (torch.randn(VECTORS, 1280, generator=g) * 0.02).contiguous(),
    }
    out = os.path.join(folder, f"{NAME}.safetensors")
    save_file(tensors, out)
    print("saved", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
