"""The scenarios the real-WebUI tier runs in both the WebUI and the stand-in (plain data).

Each scenario: ``name``; ``endpoint`` (txt2img / img2img); ``payload``: an ``/sdapi/v1/<endpoint>`` request body
(``init_image: "gray64"`` stands for a 64x64 mid-grey init image, ``mask_image: "half64"`` for a mask repainting its
left half, ``negative_prompts`` for one negative per image (set by the trace extension); ``script`` {name, args by
label} is turned into ``script_name``/``script_args`` from each side's ``/sdapi/v1/script-info``); ``compare``: how the
two traces must agree (``exact``; ``latched``: the evaluation count depends on the model, so each trace must switch at
its first level at or below the ``reference`` level and the first levels agree; ``auto``: the detector's decisions
depend on the model, so each trace must be consistent with its own per-image switch steps, and the traces must be equal
when those steps are); ``not_in``: host -> why the scenario does not apply there (skipped with that reason);
``controls``: label -> payload changes for the control runs that tell the rows apart (default: EMPTY = the same request
with negative prompt "", NEGATIVE = the same request; both with the extension off, one step of Euler, batch size 1, no
hires fix, no script, no refiner); ``rows: "crossattn+vector"`` tells SDXL rows apart by their
width and ``vector`` too (default: the cross-attention rows).

Sizes are 64x64 and steps 6-8 so that the tier runs in minutes on a CPU with random SD1.5 weights.
"""

from __future__ import annotations

import copy

from webui_tier.tools.make_random_neo_models import api_selection

TITLE = "Negative Prompt Delay"
NEGATIVE = "glasses, hat"
LONG_NEGATIVE = ", ".join(
    f"{adj} {noun}"
    for adj in ("blurry", "ugly", "distorted", "extra", "bad", "low quality", "deformed", "cropped", "grainy")
    for noun in ("hands", "face", "eyes", "text", "watermark")
)  # 90+ tokens: two 77-token chunks
REFINER_CHECKPOINT = "random-sd15-refiner"
SDXL_CHECKPOINT = "random-sdxl"  # ../shared/real-webui/tools/make_random_sdxl.py; the stand-in's FakeSDXLModel
SDXL_REFINER_CHECKPOINT = (
    "random-sdxl-refiner"  # tools/make_random_sdxl_refiner.py; the stand-in's FakeSDXLRefinerModel
)
SDXL_EMBEDDING = "npd-sdxl-emb"  # tools/make_sdxl_embedding.py, in the WebUI's embeddings/ folder
SECOND_NEGATIVE = "red, blurry"  # another image's negative in the per-image scenarios (as many tokens as NEGATIVE)
LORA = "npd-test"

BASE = {
    "prompt": "a cat",
    "negative_prompt": NEGATIVE,
    "steps": 6,
    "width": 64,
    "height": 64,
    "seed": 1,
    "cfg_scale": 7.0,
    "sampler_name": "Euler",
    "scheduler": "Automatic",
    "batch_size": 1,
    # every request names Clip skip: settings overridden through the API can outlive the request
    "override_settings": {"CLIP_stop_at_last_layers": 1},
    "alwayson_scripts": {TITLE: {"args": [True, 2]}},
}

SAMPLERS = [
    "Euler",
    "Euler a",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ SDE",
    "DPM++ 2M",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 3M SDE",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
]

SCHEDULE_TYPES = [  # every schedule type of v1.10.1 but Automatic (the sampler scenarios run that one)
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
]


def _payload(**changes) -> dict:
    p = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key == "override_settings":
            p["override_settings"].update(value)
        else:
            p[key] = value
    return p


def _slug(text: str) -> str:
    return text.lower().replace("+", "p").replace(" ", "-")


def _npd(*args) -> dict:
    return {TITLE: {"args": list(args)}}


HIRES = {  # 8 steps, then a Latent x2 hires pass of 4 steps at denoising 0.6
    "steps": 8,
    "enable_hr": True,
    "hr_scale": 2,
    "hr_upscaler": "Latent",
    "hr_second_pass_steps": 4,
    "denoising_strength": 0.6,
}


def _xyz_x(x_type: str, x_values: str) -> dict:
    """An X/Y/Z plot over one X axis (Y and Z: Nothing), as a scenario's ``script``."""
    return {
        "name": "X/Y/Z plot",
        "args": {"X type": x_type, "X values": x_values, "Y type": "Nothing", "Z type": "Nothing"},
    }


SCENARIOS: list[dict] = []

for _sampler in SAMPLERS:
    SCENARIOS.append(
        {
            "name": f"sampler-{_slug(_sampler)}",
            "endpoint": "txt2img",
            "payload": _payload(sampler_name=_sampler),
            # DPM adaptive's step sizes follow the model's output: the count of evaluations differs between models
            **(
                {"compare": "latched", "reference": {"sampler_name": "Euler", "scheduler": "Automatic", "delay": 2}}
                if _sampler == "DPM adaptive"
                else {}
            ),
        }
    )

for _scheduler in SCHEDULE_TYPES:
    SCENARIOS.append(
        {
            "name": f"img2img-schedule-{_slug(_scheduler)}",
            "endpoint": "img2img",
            "payload": _payload(
                init_image="gray64",
                steps=8,
                scheduler=_scheduler,
                denoising_strength=0.75,
                alwayson_scripts=_npd(True, 3),
            ),
        }
    )

SCENARIOS += [
    {"name": "batch-2", "endpoint": "txt2img", "payload": _payload(batch_size=2)},
    {"name": "and-prompt", "endpoint": "txt2img", "payload": _payload(prompt="a cat AND a red hat :0.7")},
    {"name": "long-negative", "endpoint": "txt2img", "payload": _payload(negative_prompt=LONG_NEGATIVE)},
    {
        "name": "img2img-euler-0.6",
        "endpoint": "img2img",
        "payload": _payload(init_image="gray64", steps=8, denoising_strength=0.6, alwayson_scripts=_npd(True, 5)),
    },
    {
        "name": "img2img-ddim-0.6",
        "endpoint": "img2img",
        "payload": _payload(
            init_image="gray64", steps=8, sampler_name="DDIM", denoising_strength=0.6, alwayson_scripts=_npd(True, 5)
        ),
    },
    {
        "name": "hires-fix",
        "endpoint": "txt2img",
        "payload": _payload(**HIRES, alwayson_scripts=_npd(True, 3)),
    },
    {
        "name": "clip-skip-2",
        "endpoint": "txt2img",
        "payload": _payload(override_settings={"CLIP_stop_at_last_layers": 2}),
    },
    {
        "name": "xyz-delay",
        "endpoint": "txt2img",
        # the axis alone turns the extension on: the panel stays off
        "payload": _payload(
            alwayson_scripts=_npd(False, 0),
            script=_xyz_x("[Negative Delay] Delay", "0,2,4"),
        ),
    },
    {
        "name": "auto-mode",
        "endpoint": "txt2img",
        "payload": _payload(batch_size=2, alwayson_scripts=_npd(True, 3, True, 0.5, 0, 3)),
        "compare": "auto",
    },
    {
        "name": "refiner",
        "endpoint": "txt2img",
        "payload": _payload(
            steps=8,
            # API requests name the refiner in these fields: the built-in Refiner script's setup is UI-only
            refiner_checkpoint=REFINER_CHECKPOINT,
            refiner_switch_at=0.5,
            alwayson_scripts=_npd(True, 6),
        ),
        "controls": {
            "EMPTY": {"negative_prompt": ""},
            "NEGATIVE": {},
            "EMPTY(refiner)": {"negative_prompt": "", "override_settings": {"sd_model_checkpoint": REFINER_CHECKPOINT}},
            "NEGATIVE(refiner)": {"override_settings": {"sd_model_checkpoint": REFINER_CHECKPOINT}},
        },
    },
    {"name": "lora", "endpoint": "txt2img", "payload": _payload(prompt=f"a cat <lora:{LORA}:0.8>")},
    # the delay as a share of Sampling steps: "50%" of 6 and of 8 steps, a share given with the unit argument, a
    # fraction of a step (30 % of 7 = 2.1: step 3), hires fix, and X/Y/Z over shares and over Steps
    {"name": "percent-6-steps", "endpoint": "txt2img", "payload": _payload(alwayson_scripts=_npd(True, "50%"))},
    {
        "name": "percent-8-steps-unit",
        "endpoint": "txt2img",
        "payload": _payload(steps=8, alwayson_scripts=_npd(True, 50, False, 0.3, 20, 35, "%")),
    },
    {
        "name": "percent-fraction",
        "endpoint": "txt2img",
        "payload": _payload(steps=7, sampler_name="Heun", alwayson_scripts=_npd(True, "30%")),
    },
    {
        "name": "percent-hires",
        "endpoint": "txt2img",
        "payload": _payload(**HIRES, alwayson_scripts=_npd(True, "37.5%")),
    },
    {
        "name": "percent-img2img",
        "endpoint": "img2img",
        "payload": _payload(init_image="gray64", steps=8, denoising_strength=0.6, alwayson_scripts=_npd(True, "62.5%")),
    },
    {
        "name": "percent-xyz",
        "endpoint": "txt2img",
        "payload": _payload(
            alwayson_scripts=_npd(False, 0),
            script=_xyz_x("[Negative Delay] Delay (% of steps)", "0%, 33%, 50"),
        ),
    },
    {
        "name": "percent-xyz-over-steps",
        "endpoint": "txt2img",
        "payload": _payload(
            alwayson_scripts=_npd(True, "25%"),
            script=_xyz_x("Steps", "4,8"),
        ),
    },
]

# SDXL (issue 30) in AUTOMATIC1111, compared with the stand-in's FakeSDXLModel like the SD1.5 scenarios. Start the
# WebUI with the SDXL checkpoint selected (run-webui.sh CKPT=...): a request naming another checkpoint makes v1.10.1
# load it and load the previous one back afterwards.
_SDXL = {"override_settings": {"sd_model_checkpoint": SDXL_CHECKPOINT}}
for _name, _endpoint, _changes in [
    ("euler", "txt2img", {}),
    ("heun", "txt2img", {"sampler_name": "Heun"}),
    ("dpmpp-2m-karras", "txt2img", {"sampler_name": "DPM++ 2M", "scheduler": "Karras"}),
    ("unipc", "txt2img", {"sampler_name": "UniPC"}),
    ("batch-2", "txt2img", {"batch_size": 2}),
    ("long-negative", "txt2img", {"negative_prompt": "(" + LONG_NEGATIVE + ":1.2), " + LONG_NEGATIVE}),
    # the same with an SDXL textual-inversion embedding of 8 vectors in front (tools/make_sdxl_embedding.py; the
    # stand-in reads its name as plain words)
    (
        "long-negative-embedding",
        "txt2img",
        {"negative_prompt": f"{SDXL_EMBEDDING}, (" + LONG_NEGATIVE + ":1.2), " + LONG_NEGATIVE},
    ),
    (
        "img2img-0.6",
        "img2img",
        {"init_image": "gray64", "steps": 8, "denoising_strength": 0.6, "alwayson_scripts": _npd(True, 5)},
    ),
    ("hires-dpmpp-2m", "txt2img", {**HIRES, "hr_sampler_name": "DPM++ 2M", "alwayson_scripts": _npd(True, 3)}),
    ("percent", "txt2img", {"alwayson_scripts": _npd(True, "50%")}),
]:
    SCENARIOS.append({"name": f"sdxl-{_name}", "endpoint": _endpoint, "payload": _payload(**_SDXL, **_changes)})
# Forge Classic and Neo run UniPC as k-diffusion's sampler (6 evaluations at 14.6, 5.95, 2.92, ... against v1.10.1's
# 7 of its timestep UniPC), which the stand-in does not model; their rows were checked by hand (docs/forks.md §6)
_K_UNIPC = "k-diffusion's UniPC: other levels than v1.10.1's, not modelled (rows E E N N N N, docs/forks.md §6)"
next(s for s in SCENARIOS if s["name"] == "sdxl-unipc")["not_in"] = {"classic": _K_UNIPC, "neo": _K_UNIPC}
SCENARIOS.append(
    {
        "name": "sdxl-auto",
        "endpoint": "txt2img",
        "payload": _payload(**_SDXL, batch_size=2, alwayson_scripts=_npd(True, 3, True, 0.5, 0, 3)),
        "compare": "auto",
    }
)

# SDXL base -> SDXL refiner (another architecture: OpenCLIP-G only, 1280-wide rows, a 2560-wide vector with the
# aesthetic score) at 0.5 of 8 steps, the delay before the switch (2) and after it (6). The refiner's empty and negative
# rows come from requests with the refiner selected; zero rows of both models look alike, so rows are told apart by
# their width and vector too ("rows"). The WebUI must run in half precision for base and refiner to fit in memory
# (webui_tier/tools/make_random_sdxl_refiner.py).
_SDXL_REFINER = {"override_settings": {"sd_model_checkpoint": SDXL_REFINER_CHECKPOINT}}
for _delay in (2, 6):
    SCENARIOS.append(
        {
            "name": f"sdxl-refiner-delay-{_delay}",
            "endpoint": "txt2img",
            "payload": _payload(
                **_SDXL,
                steps=8,
                refiner_checkpoint=SDXL_REFINER_CHECKPOINT,
                refiner_switch_at=0.5,
                alwayson_scripts=_npd(True, _delay),
            ),
            "rows": "crossattn+vector",
            "controls": {
                "EMPTY": {"negative_prompt": ""},
                "NEGATIVE": {},
                "EMPTY(refiner)": {"negative_prompt": "", **_SDXL_REFINER},
                "NEGATIVE(refiner)": _SDXL_REFINER,
            },
        }
    )
# SDXL inpainting (img2img with the left half masked), and batches whose negatives are all empty, partly empty, or
# differ per image ("negative_prompts": one per image, set by the trace extension in before_process, as the API takes
# one negative per request). v1.10.1 encodes each distinct negative on its own, so an empty one is zeros (SDXL's empty
# negative) beside non-empty ones too: its rows are EMPTY before and after the switch. All empty: nothing to delay
# (the extension leaves the request alone), one control.
SCENARIOS += [
    {
        "name": "sdxl-inpaint",
        "endpoint": "img2img",
        "payload": _payload(
            **_SDXL,
            init_image="gray64",
            mask_image="half64",
            steps=8,
            denoising_strength=0.75,
            alwayson_scripts=_npd(True, 3),
        ),
    },
    {
        "name": "sdxl-all-empty",
        "endpoint": "txt2img",
        "payload": _payload(**_SDXL, batch_size=2, negative_prompt=""),
        "controls": {"EMPTY": {"negative_prompt": ""}},
    },
    {
        "name": "sdxl-some-empty",
        "endpoint": "txt2img",
        "payload": _payload(**_SDXL, batch_size=2, negative_prompts=[NEGATIVE, ""]),
    },
    {
        "name": "sdxl-per-image",
        "endpoint": "txt2img",
        "payload": _payload(**_SDXL, batch_size=2, negative_prompts=[NEGATIVE, SECOND_NEGATIVE]),
        "controls": {
            "EMPTY": {"negative_prompt": ""},
            "NEGATIVE": {},
            "NEGATIVE 2": {"negative_prompt": SECOND_NEGATIVE},
        },
    },
]

# Forge Neo's models other than SD, random and reduced (webui_tier/tools/neo_models.md builds them): each selected
# through /sdapi/v1/options ("options": the checkpoint and its text encoder / VAE files, as the builder names them),
# run with Neo's preset sampler, batch 2, and compared with Neo's own empty negative (test_real_webui.own_empty); the
# stand-in has no counterpart.
NEO_SETTINGS = {  # Neo's UI presets: Euler with the Simple schedule; Flux dev with a real CFG above 1
    "chroma": {"cfg_scale": 4.0},
    "flux": {"cfg_scale": 4.0, "distilled_cfg_scale": 5.0},
    "qwen": {"cfg_scale": 4.0},
    "wan": {"cfg_scale": 4.0, "distilled_cfg_scale": 8.0},
    "zimage": {"cfg_scale": 4.0, "distilled_cfg_scale": 3.0},
    "lumina": {"cfg_scale": 4.0, "distilled_cfg_scale": 6.0},
}
NEO_AUTO = {"chroma": 0.0, "flux": 0.08, "qwen": 0.25, "wan": 0.9, "zimage": 0.15, "lumina": 0.3}  # sensitivity
for _arch in NEO_SETTINGS:
    _neo = {"endpoint": "txt2img", "compare": "own-empty", "hosts": ["neo"], "options": api_selection(_arch)}
    _body = {"scheduler": "Simple", "batch_size": 2, **NEO_SETTINGS[_arch], "alwayson_scripts": _npd(True, 2)}
    SCENARIOS.append({**_neo, "name": f"neo-{_arch}", "payload": _payload(**_body)})
    # auto mode (test_real_webui.own_auto): 8 steps, window 1-6, negative "x", seed 1, at a sensitivity where Neo
    # 2.6's random weights decide (found by trying 0-0.9): Chroma's two images at steps 6 and 1 (the empty prompt, 2
    # tokens, and "x", 3, cannot share a batch: the switched image is carried by the post-CFG hook), Flux's at 1 and 6
    # (T5 padded to 256: rows mixed), the others at one step (Qwen-Image and Wan run one image)
    _auto = {
        **_body,
        "steps": 8,
        "negative_prompt": "x",
        "alwayson_scripts": _npd(True, 4, True, NEO_AUTO[_arch], 1, 6),
    }
    SCENARIOS.append({**_neo, "compare": "own-auto", "name": f"neo-{_arch}-auto", "payload": _payload(**_auto)})

# every other pass on the flow models (issue 27), compared with Neo's own empty negative by the noise-level rule (the
# txt2img level of step 3 of 10): img2img at two strengths (0.8 starts one step down and switches at its step 2, 0.5
# starts below the level), inpainting, a Flux hires pass with its own Distilled CFG and another sampler, and a Wan
# video of 5 frames (Neo makes 5 frames of a batch size of 5, sampled as one latent)
_CHROMA = {**NEO_SETTINGS["chroma"], "scheduler": "Simple", "steps": 10, "alwayson_scripts": _npd(True, 3)}
_NEO_PASSES = [
    ("chroma", "img2img-0.8", "img2img", {**_CHROMA, "init_image": "gray64", "denoising_strength": 0.8}),
    ("chroma", "img2img-0.5", "img2img", {**_CHROMA, "init_image": "gray64", "denoising_strength": 0.5}),
    (
        "chroma",
        "inpaint",
        "img2img",
        {**_CHROMA, "init_image": "gray64", "mask_image": "half64", "denoising_strength": 0.8},
    ),
    (
        "flux",
        "hires",
        "txt2img",
        {
            **NEO_SETTINGS["flux"],
            "scheduler": "Simple",
            "steps": 10,
            "enable_hr": True,
            "hr_scale": 1.5,
            "hr_upscaler": "Latent",
            "hr_second_pass_steps": 4,
            "denoising_strength": 0.8,
            "hr_sampler_name": "DPM++ 2M",
            "hr_distilled_cfg": 3.0,
            "alwayson_scripts": _npd(True, 3),
        },
    ),
    ("wan", "video-5", "txt2img", {**NEO_SETTINGS["wan"], "scheduler": "Simple", "batch_size": 5}),
]
for _arch, _what, _endpoint, _body in _NEO_PASSES:
    _neo = {"endpoint": _endpoint, "compare": "own-empty", "hosts": ["neo"], "options": api_selection(_arch)}
    SCENARIOS.append({**_neo, "name": f"neo-{_arch}-{_what}", "payload": _payload(**_body)})

DEFAULT_CONTROLS = {"EMPTY": {"negative_prompt": ""}, "NEGATIVE": {}}

BY_NAME = {s["name"]: s for s in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS), "scenario names must be unique"
