"""What a running WebUI encodes for an empty negative prompt on SDXL: zeros, or the encoded "" (issue 30).

Run from the checkout against a WebUI with the trace extension installed (``webui_tier/install.sh``) and an SDXL
checkpoint selected:

    python webui_tier/tools/sdxl_empty_negative.py --url http://127.0.0.1:7864

Three requests with the extension off (64x64, one Euler step, CFG 7), and the uncond of the first evaluation of each:
batch 1 with negative "" ("all empty"), batch 2 with negatives "" and "glasses, hat" ("mixed", per image through
the trace extension), and batch 1 with "glasses, hat". Printed per row: the absolute sum of ``crossattn`` per
77-token chunk and of ``vector``. A1111 v1.10.1 zeroes ``crossattn`` and the pooled part of ``vector`` when every
text handed to one ``get_learned_conditioning`` call is empty and negative; ``prompt_parser.get_learned_conditioning``
makes one such call per distinct prompt (its schedule's texts), so an empty negative is zeros also beside a non-empty
one in the same batch. Zeros show as crossattn 0 and a vector sum that holds only the size embeddings (smaller than
the negative's); the encoded "" would give a crossattn sum near the negative's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from webui_tier.traces import TRACE_TITLE, RealWebUI  # noqa: E402

NPD = "Negative Prompt Delay"


def first_uncond(side: RealWebUI, **changes) -> dict:
    body = {
        "prompt": "a cat",
        "negative_prompt": "",
        "steps": 1,
        "width": 64,
        "height": 64,
        "seed": 1,
        "cfg_scale": 7.0,
        "sampler_name": "Euler",
        "batch_size": 1,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
        "alwayson_scripts": {NPD: {"args": [False, 0]}},
    }
    body.update(changes)
    run = side.run("txt2img", body)
    rec = next(r for r in run["records"] if r["event"] == "eval")
    return rec["uncond"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--json", help="write the three unconds here")
    a = ap.parse_args()
    side = RealWebUI(a.url)
    assert TRACE_TITLE
    runs = {
        "all empty": first_uncond(side),
        "mixed": first_uncond(side, batch_size=2, negative_prompts=["", "glasses, hat"]),
        "negative": first_uncond(side, negative_prompt="glasses, hat"),
    }
    for name, u in runs.items():
        if not isinstance(u, dict) or "crossattn" not in u:
            print(f"{name}: not an SDXL dict: {json.dumps(u)[:200]}")
            continue
        for i, (ca, vec) in enumerate(zip(u["crossattn"]["rows"], u["vector"]["rows"], strict=True)):
            print(
                f"{name:10s} row {i}: crossattn {u['crossattn']['shape']} abs sum per chunk "
                f"{[round(c[1], 3) for c in ca]}; vector {u['vector']['shape']} abs sum {round(vec[0][1], 3)}"
            )
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
