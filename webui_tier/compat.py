"""Compatibility scenarios: this extension beside another WebUI extension in a real WebUI v1.10.1 (issue 23).

Each combination (``COMBINATIONS``, plain data) names the other extension (repository, the commit it was run at,
its folder under ``NPD_COMPAT_EXTENSIONS``, its script title), the request changes it needs, and its
``alwayson_scripts`` arguments switched on and off. Each runs in two modes (``MODES``: a fixed delay of 2 steps,
and auto-detect), batch size 2, and is checked four ways:

- traceback: the WebUI log (``NPD_COMPAT_WEBUI_LOG``) gains no ``Traceback`` / ``*** Error`` line during it;
- rows: per denoiser evaluation each uncond row is EMPTY or NEGATIVE (told apart by the control runs of
  ``traces.py``: extension off, one Euler step, batch 1; here each control once with the other extension off and
  once with it on), never OTHER; a fixed delay: the E/N pattern of every pass equals the pattern of the same
  request with the other extension off, and in a txt2img Euler pass rows are EMPTY before step ``delay`` and
  NEGATIVE from it; auto: the infotext's ``Negative delay steps`` are consistent with the rows
  (``traces.auto_errors``) or the log shows the extension's one fallback line;
- effect: the images differ from the same request with the other extension off (so it still acts);
- infotext: our keys are in every image's infotext.

How to bring the extensions in at their commits: ``webui_tier/tools/fetch_compat.md``. The tests
(``webui_tier/test_compat.py``) are skipped unless ``WEBUI_URL`` and ``NPD_COMPAT_EXTENSIONS`` are set;
``python -m webui_tier.compat [NAME ...]`` runs combinations and writes ``webui_tier/compat_results.json``.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webui_tier import traces  # noqa: E402
from webui_tier.scenarios import BASE, DEFAULT_CONTROLS  # noqa: E402

NPD = traces.NPD_TITLE
DELAY = 2
MODES = {
    "fixed": [True, DELAY],
    # enabled, delay (the fallback), auto, sensitivity, earliest, latest: as the tier's auto-mode scenario
    "auto": [True, 3, True, 0.5, 0, 3],
}
FALLBACK_LINE = "auto-detection failed"
TRACEBACK_LINE = re.compile(r"Traceback \(most recent call last\)|^\*\*\* Error|^Error completing request", re.M)
# NPD_COMPAT_HOST=neo: Forge Neo's built-in ControlNet (its preprocessor list spells "None"); results kept apart
HOST = os.environ.get("NPD_COMPAT_HOST", "a1111")
_NAME = "compat_results.json" if HOST == "a1111" else f"compat_results_{HOST}.json"
RESULTS = Path(__file__).resolve().parent / _NAME
CONTROLNET_MODEL = "control_random_sd15"  # built by tools/fetch_compat.md's recipe: random weights, SD1.5 shapes
ADETAILER_MODEL = "face_random_yolov8n.pt"  # ultralytics' yolov8n.yaml with random weights

BASE_PAYLOAD = {**copy.deepcopy(BASE), "batch_size": 2}


def _controlnet_unit(mode: str) -> dict:
    return {
        "enabled": True,
        "module": "None" if HOST == "neo" else "none",
        "model": CONTROLNET_MODEL,
        "weight": 1.0,
        "image": "gray64",  # replaced by a mid-grey 64x64 PNG
        "resize_mode": "Crop and Resize",
        "control_mode": mode,
        "pixel_perfect": False,
        "processor_res": 64,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
    }


# args: a list (the script's full argument list), or {index: value} over the script-info defaults
COMBINATIONS = [
    {
        "name": "dynamic-thresholding",
        "repo": "mcmonkeyprojects/sd-dynamic-thresholding",
        "commit": "73e4e04565aa86237d66764ac58ffae1f7e40e48",
        "folder": "sd-dynamic-thresholding",
        "title": "Dynamic Thresholding (CFG Scale Fix)",
        "changes": {"cfg_scale": 15.0},
        "on": {0: True, 1: 5.0, 2: 95.0},
        "off": {0: False},
        # its CFG combine does not touch the rows; with 1 step (the controls) it divides by steps - 1 = 0
        "controls_with_extension": False,
    },
    {
        "name": "npw",
        "repo": "muerrilla/stable-diffusion-NPW",
        "commit": "356a3c05fb2de3d1d75c0beb7e93dceace883922",
        "folder": "stable-diffusion-NPW",
        "title": "Negative Prompt Weight extention",
        "changes": {},
        "on": [1.6],
        "off": [1.0],
        # NPW registers its on_cfg_denoiser callback in process(), after the trace's: the trace sees the rows
        # before NPW's lerp(empty, uncond, weight); its controls are the plain EMPTY/NEGATIVE rows
    },
    {
        # the fallback line of "npw" suggests Settings > Callback order; this is that order: NPW's callback first,
        # so ours (and auto's measurement) sees the weighted negative
        "name": "npw-callback-first",
        "repo": "muerrilla/stable-diffusion-NPW",
        "commit": "356a3c05fb2de3d1d75c0beb7e93dceace883922",
        "folder": "stable-diffusion-NPW",
        "title": "Negative Prompt Weight extention",
        "changes": {
            "override_settings": {"prioritized_callbacks_cfg_denoiser": ["stable-diffusion-npw/npw.py/cfg_denoiser"]}
        },
        "on": [1.6],
        "off": [1.0],
    },
    {
        "name": "negpip",
        "repo": "hako-mikan/sd-webui-negpip",
        "commit": "dc75fd2c0110dc27c8dea31221fcdf9090dbaf55",
        "folder": "sd-webui-negpip",
        "title": "NegPiP",
        "changes": {"prompt": "a cat, (hat:-1.5)"},
        "on": [True],
        "off": [False],
    },
    {
        "name": "neutral-prompt",
        "repo": "ljleb/sd-webui-neutral-prompt",
        "commit": "64ee2bef6318d2c97b87962e4babadc0d804d93c",
        "folder": "sd-webui-neutral-prompt",
        "title": "Neutral Prompt",
        "changes": {"prompt": "a cat AND_PERP a dog :0.8"},
        "on": [0.0],
        "off": [0.0],
        "on_settings": {"neutral_prompt_enabled": True},
        "off_settings": {"neutral_prompt_enabled": False},
    },
    {
        "name": "controlnet-txt2img",
        "repo": "Mikubill/sd-webui-controlnet",
        "commit": "56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81",
        "folder": "sd-webui-controlnet",
        "title": "ControlNet",
        "changes": {},
        "on": [_controlnet_unit("Balanced")],
        "off": [{**_controlnet_unit("Balanced"), "enabled": False}],
    },
    {
        "name": "controlnet-more-important",
        "repo": "Mikubill/sd-webui-controlnet",
        "commit": "56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81",
        "folder": "sd-webui-controlnet",
        "title": "ControlNet",
        "changes": {},
        "on": [_controlnet_unit("ControlNet is more important")],
        "off": [{**_controlnet_unit("Balanced"), "enabled": False}],
    },
    {
        "name": "controlnet-img2img",
        "repo": "Mikubill/sd-webui-controlnet",
        "commit": "56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81",
        "folder": "sd-webui-controlnet",
        "title": "ControlNet",
        "endpoint": "img2img",
        "changes": {"init_image": "gray64", "denoising_strength": 0.75},
        "on": [_controlnet_unit("Balanced")],
        "off": [{**_controlnet_unit("Balanced"), "enabled": False}],
    },
    {
        "name": "regional-prompter",
        "repo": "hako-mikan/sd-webui-regional-prompter",
        "commit": "be623452203b396ed87b85583a3cfd56e8157214",
        "folder": "sd-webui-regional-prompter",
        "title": "Regional Prompter",
        "changes": {"prompt": "a cat BREAK a dog"},
        # active, debug, mode Matrix, Columns, Mask, Prompt, ratios 1,1, base 0.2, no base/common, Attention
        "on": {0: True, 2: "Matrix", 3: "Columns", 6: "1,1", 11: "Attention"},
        "off": {0: False},
    },
    {
        "name": "incantations-pag",
        "repo": "v0xie/sd-webui-incantations",
        "commit": "980d63838a2b8c8659a01b242e55551870619d6a",
        "folder": "sd-webui-incantations",
        "title": "Incantations",
        # Perturbed-Attention Guidance: a further UNet evaluation per step inside the CFG denoiser
        "changes": {},
        "on": {12: True, 13: 3.0},
        "off": {12: False},
    },
    {
        "name": "adetailer",
        "repo": "Bing-su/adetailer",
        "commit": "36189cbea735b85fd01e98ac42002b8ce6f0e41d",
        "folder": "adetailer",
        "title": "ADetailer",
        "changes": {
            # ADetailer passes only the scripts named in this setting on to its inpainting pass
            "override_settings": {"ad_script_names": "negative_prompt_delay,zz_npd_trace"},
        },
        "on": [
            True,
            False,
            {
                "ad_model": ADETAILER_MODEL,
                "ad_confidence": 0.01,
                "ad_mask_k": 1,
                "ad_steps": 6,
                "ad_use_steps": True,
                "ad_denoising_strength": 0.5,
                "ad_inpaint_only_masked": False,
            },
        ],
        "off": [False, False, {"ad_model": "None"}],
        "controls_with_extension": False,  # its pass does not touch the first pass's rows; a control would run it
    },
]
BY_NAME = {c["name"]: c for c in COMBINATIONS}


# --- requests -----------------------------------------------------------------------------------------------------


def extensions_dir() -> Path | None:
    d = os.environ.get("NPD_COMPAT_EXTENSIONS")
    return Path(d) if d else None


def _script_args(side, combo: dict, state: str, is_img2img: bool) -> list:
    args = combo[state]
    if isinstance(args, list):
        return copy.deepcopy(args)
    info = next(
        s for s in side.script_info() if s["name"] == combo["title"].lower() and bool(s["is_img2img"]) == is_img2img
    )
    out = [a.get("value") for a in info["args"]]
    for i, v in args.items():
        out[i] = v
    return out


def _fill_images(obj):
    if obj == "gray64":
        return traces.gray_png_base64(64)
    if isinstance(obj, list):
        return [_fill_images(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _fill_images(v) for k, v in obj.items()}
    return obj


def payload(side, combo: dict, mode: str, state: str) -> dict:
    """The request body: the tier's base (batch 2) + the combination's changes + the other extension on/off."""
    endpoint = combo.get("endpoint", "txt2img")
    p = copy.deepcopy(BASE_PAYLOAD)
    for k, v in combo["changes"].items():
        if k == "override_settings":
            p["override_settings"].update(v)
        else:
            p[k] = copy.deepcopy(v)
    p["override_settings"].update(combo.get(f"{state}_settings", {}))
    p["alwayson_scripts"] = {
        NPD: {"args": list(MODES[mode])},
        combo["title"]: {"args": _script_args(side, combo, state, endpoint == "img2img")},
    }
    return p


class CompatWebUI(traces.RealWebUI):
    """``RealWebUI`` that also keeps the response (images, info) and caches identical requests."""

    def __init__(self, url: str, log: str | None = None) -> None:
        super().__init__(url)
        self.log = Path(log) if log else None
        self._cache: dict[str, dict] = {}

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log and self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log or not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def run(self, endpoint: str, payload: dict) -> dict:
        key = endpoint + json.dumps(payload, sort_keys=True)
        if key in self._cache:
            return self._cache[key]
        body = copy.deepcopy(payload)
        if "init_image" in body:
            body["init_images"] = [traces.gray_png_base64(int(body.pop("init_image").removeprefix("gray")))]
        body = _fill_images(body)
        tag = uuid.uuid4().hex
        body.setdefault("alwayson_scripts", {})[traces.TRACE_TITLE] = {"args": [tag]}
        offset, t0 = self.log_size(), time.time()
        response = self._request(f"/sdapi/v1/{endpoint}", body)
        records = self._request(f"/npd-trace/records?tag={tag}")["records"]
        if not records:
            raise RuntimeError("the trace extension recorded nothing for this request")
        run = {
            "records": records,
            "unet_rows": records[-1]["unet_rows"],
            "images": response.get("images") or [],
            "info": json.loads(response.get("info") or "{}"),
            "log": self.log_since(offset),
            "seconds": round(time.time() - t0, 1),
        }
        self._cache[key] = run
        return run


# --- checks -------------------------------------------------------------------------------------------------------


def _pixels(b64: str):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(int)


def image_difference(a: dict, b: dict, n: int) -> float:
    """Largest mean absolute pixel difference over the first ``n`` images (0: identical)."""
    return max(
        float(abs(_pixels(x) - _pixels(y)).mean()) for x, y in zip(a["images"][:n], b["images"][:n], strict=True)
    )


def en_pattern(trace: dict) -> list[list[str]]:
    """Per pass, per evaluation: the rows as a string of E (empty) / N (negative) / ? (other)."""
    out = []
    for gen in trace["gens"]:
        for p in gen["passes"]:
            out.append(
                [
                    "".join(
                        "E" if lab.startswith("EMPTY") else "N" if lab.startswith("NEGATIVE") else "?"
                        for lab in e["labels"]
                    )
                    for e in p["evals"]
                ]
            )
    return out


def labelled_trace(side, combo: dict, mode: str, state: str, references: dict) -> tuple[dict, dict]:
    body = payload(side, combo, mode, state)
    run = side.run(combo.get("endpoint", "txt2img"), body)
    return traces.normalise(side, run, references), run


def references_for(side, combo: dict) -> dict:
    """EMPTY / NEGATIVE with the other extension off, and (where they encode differently) with it on."""
    body = payload(side, combo, "fixed", "on")
    body.pop("init_image", None)
    refs = {}
    for suffix, state in (("", "off"), ("+ext", "on")):
        if state == "on" and not combo.get("controls_with_extension", True):
            continue
        for label, changes in DEFAULT_CONTROLS.items():
            ctl = traces.control_payload(body, changes)
            ctl["alwayson_scripts"][combo["title"]] = {"args": _script_args(side, combo, state, False)}
            ctl["override_settings"].update(combo.get(f"{state}_settings", {}))
            ref = traces._row_references(side, side.run("txt2img", ctl))
            if not any(traces._signature_row_matches(ref, r) for r in refs.values()):
                refs[label + suffix] = ref
    if any(traces._signature_row_matches(refs["EMPTY"], r) for k, r in refs.items() if k.startswith("NEGATIVE")):
        raise AssertionError("EMPTY and NEGATIVE controls encode alike")
    return refs


def check(side, combo: dict, mode: str) -> dict:
    """Run one combination in one mode; returns the outcome (``ok`` and the evidence)."""
    refs = references_for(side, combo)
    on, run_on = labelled_trace(side, combo, mode, "on", refs)
    off, run_off = labelled_trace(side, combo, mode, "off", refs)
    batch = BASE_PAYLOAD["batch_size"]
    problems = []
    log = run_on["log"] + run_off["log"]
    tracebacks = TRACEBACK_LINE.findall(run_on["log"])
    if tracebacks:
        problems.append(f"traceback in the WebUI log: {len(tracebacks)}")
    pat_on, pat_off = en_pattern(on), en_pattern(off)
    if any("?" in row for passes in pat_on for row in passes):
        problems.append("rows matching no control (OTHER)")
    npd_info = traces.npd_infotext(on["infotexts"])
    if not npd_info or not all(npd_info):
        problems.append(f"infotext without our keys: {on['infotexts'][:1]}")
    fallback = FALLBACK_LINE in run_on["log"]
    auto = {}
    if mode == "fixed":
        # passes of its own (ADetailer's inpainting) have no counterpart with it off: each must switch once, E to N
        if pat_on[: len(pat_off)] != pat_off:
            problems.append(f"rows differ from the other extension off: on {pat_on}, off {pat_off}")
        for extra in pat_on[len(pat_off) :]:
            for i in range(len(extra[0]) if extra else 0):
                seq = "".join(e[i] for e in extra)
                if not re.fullmatch("E*N*", seq):
                    problems.append(f"a pass of the other extension, row {i}: {seq} is not EMPTY then NEGATIVE")
        first = on["gens"][0]["passes"][0]
        if combo.get("endpoint", "txt2img") == "txt2img":
            want = ["E" * batch if e["denoiser_step"] < DELAY else "N" * batch for e in first["evals"]]
            if pat_on[0] != want:
                problems.append(f"first pass rows {pat_on[0]}, expected {want}")
    else:
        steps = [i.get("Negative delay steps") for i in npd_info]
        auto = {"steps": steps, "fallback_line": fallback}
        if fallback:
            lines = [ln for ln in run_on["log"].splitlines() if FALLBACK_LINE in ln]
            auto["fallback_lines"] = lines
        elif not steps or steps[0] is None:
            problems.append("auto: neither switch steps in the infotext nor a fallback line in the log")
        elif len(on["gens"]) == 1 and len(on["gens"][0]["passes"]) == 1:
            # auto_errors knows EMPTY / NEGATIVE and one cond per image: labels "+ext" count as theirs, and the
            # UNet rows without the probe are those of the same request with the fixed delay (AND_PERP: 2 conds)
            plain = copy.deepcopy(on)
            for gen in plain["gens"]:
                for p in gen["passes"]:
                    for e in p["evals"]:
                        e["labels"] = [lab.removesuffix("+ext") for lab in e["labels"]]
            fixed, _ = labelled_trace(side, combo, "fixed", "on", refs)
            evals = len(plain["gens"][0]["passes"][0]["evals"])
            plain["unet_rows"] = on["unet_rows"] - fixed["unet_rows"] + 2 * batch * evals
            auto["unet_rows_fixed_delay"] = fixed["unet_rows"]
            _, _, _, _, earliest, latest = MODES["auto"]
            # img2img: the pass starts at txt2img step ``offset`` (the infotext's steps count from txt2img's step 0)
            offset = BASE_PAYLOAD["steps"] - evals
            if offset:
                shift = " ".join(str(int(k) - offset) for k in steps[0].split())
                plain["infotexts"] = [
                    re.sub(r"Negative delay steps: [0-9 ]+", f"Negative delay steps: {shift}", t)
                    for t in plain["infotexts"]
                ]
                earliest, latest = max(0, earliest - offset), latest - offset
                auto["txt2img_step_of_first_evaluation"] = offset
            errs = traces.auto_errors(plain, earliest, latest)
            if errs:
                problems += [f"auto: {e}" for e in errs]
    effect = image_difference(run_on, run_off, batch)
    if effect == 0:
        problems.append("no effect: the images equal those with the other extension off")
    return {
        "ok": not problems,
        "problems": problems,
        "traceback": bool(tracebacks),
        "traceback_text": _traceback_excerpt(run_on["log"]) if tracebacks else None,
        "rows": pat_on,
        "rows_other_extension_off": pat_off,
        "controls": list(refs),
        "labels_seen": sorted(
            {lab for g in on["gens"] for p in g["passes"] for e in p["evals"] for lab in e["labels"]}
        ),
        "unet_rows": [on["unet_rows"], off["unet_rows"]],
        "infotext": npd_info,
        "auto": auto,
        "image_difference_vs_off": round(effect, 3),
        "seconds": [run_on["seconds"], run_off["seconds"]],
        "fallback_line_seen": fallback,
        "log_warnings": [ln for ln in log.splitlines() if "Negative" in ln or "negative" in ln][:10],
    }


def _traceback_excerpt(log: str) -> str:
    i = log.find("Traceback")
    return log[max(0, i - 300) : i + 4000]


# --- installing (run with the WebUI's Python: torch, safetensors; ultralytics for the ADetailer model) -----------


def build_random_controlnet(checkpoint: Path, out: Path) -> None:
    """An SD1.5 ControlNet of the right key names and shapes: the encoder (time_embed, input_blocks, middle_block)
    copied from the checkpoint's UNet, a random hint block and random (not zero) zero-convs, so that it acts."""
    import torch
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(0)
    pre = "model.diffusion_model."
    sd = {}
    for k, v in load_file(str(checkpoint)).items():
        if k.startswith(pre) and k[len(pre) :].startswith(("time_embed.", "input_blocks.", "middle_block.")):
            sd["control_model." + k[len(pre) :]] = v.float().clone()

    def conv(name: str, cin: int, cout: int, k: int, scale: float) -> None:
        sd[f"control_model.{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * scale
        sd[f"control_model.{name}.bias"] = torch.randn(cout, generator=g) * scale

    hint = [(3, 16), (16, 16), (16, 32), (32, 32), (32, 96), (96, 96), (96, 256), (256, 320)]
    for i, (a, b) in enumerate(hint):
        conv(f"input_hint_block.{2 * i}", a, b, 3, (1.0 / (a * 9)) ** 0.5)
    for i, c in enumerate([320] * 4 + [640] * 3 + [1280] * 5):
        conv(f"zero_convs.{i}.0", c, c, 1, 0.05 / c**0.5)
    conv("middle_block_out.0", 1280, 1280, 1, 0.05 / 1280**0.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out))


def build_random_yolo(out: Path) -> None:
    """A detector ADetailer accepts: ultralytics' yolov8n built from its yaml (no download), random weights."""
    import torch
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    head = model.model.model[-1]  # Detect: its class logits start near -10 (no box would pass any confidence)
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias.fill_(2.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(out))


def install(webui: Path) -> list[str]:
    """Copy every combination's folder found in ``NPD_COMPAT_EXTENSIONS`` into ``webui/extensions`` and build the
    random-weight models they need. Restart the WebUI afterwards."""
    import shutil

    src = extensions_dir()
    if src is None:
        raise SystemExit("set NPD_COMPAT_EXTENSIONS to the folder holding the exported extensions")
    done = []
    for folder in sorted({c["folder"] for c in COMBINATIONS}):
        if not (src / folder).is_dir():
            continue
        dst = webui / "extensions" / folder
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src / folder, dst)
        done.append(folder)
    if "sd-webui-controlnet" in done:
        build_random_controlnet(
            webui / "models" / "Stable-diffusion" / "random-sd15.safetensors",
            webui / "extensions" / "sd-webui-controlnet" / "models" / f"{CONTROLNET_MODEL}.safetensors",
        )
    if "adetailer" in done:
        build_random_yolo(webui / "models" / "adetailer" / ADETAILER_MODEL)
    return done


def main(argv: list[str]) -> int:
    if argv[:1] == ["--install"]:
        print("installed", install(Path(argv[1])))
        return 0
    url = os.environ.get("WEBUI_URL", "http://127.0.0.1:7861")
    side = CompatWebUI(url, os.environ.get("NPD_COMPAT_WEBUI_LOG"))
    side.check()
    names = [a for a in argv if not a.startswith("--")] or [c["name"] for c in COMBINATIONS]
    modes = [m for m in MODES if f"--{m}" in argv] or list(MODES)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"combinations": {}}
    installed = {s["name"] for s in side.script_info()}
    results["webui_url"] = url
    results["modes"] = MODES
    results["batch_size"] = BASE_PAYLOAD["batch_size"]
    try:
        import subprocess

        results["npd_commit"] = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    for name in names:
        combo = BY_NAME[name]
        entry = results["combinations"].setdefault(name, {})
        entry.update(repo=combo["repo"], commit=combo["commit"])
        if combo["title"].lower() not in installed:
            entry["skipped"] = f"{combo['title']!r} not in script-info"
            continue
        for mode in modes:
            t0 = time.time()
            try:
                entry[mode] = check(side, combo, mode)
            except Exception as e:  # noqa: BLE001
                entry[mode] = {"ok": False, "problems": [f"{type(e).__name__}: {e}"[:3000]]}
            entry[mode]["wall_s"] = round(time.time() - t0, 1)
            print(
                name, mode, json.dumps({k: entry[mode].get(k) for k in ("ok", "problems", "rows", "auto")}), flush=True
            )
            RESULTS.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
