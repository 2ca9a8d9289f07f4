"""Negative Prompt Delay trace extension: records every CFG denoiser evaluation (test tool, not for users).

Install as ``<webui>/extensions/zz-npd-trace`` (the folder name sorts after the extension under test, so this
callback, registered at import, runs after the extension's and sees the ``text_uncond`` the UNet will get).
The same file is loaded into the stand-in by ``webui_tier/traces.py``.

Option (its second argument): a list of per-image negative prompts, set in ``before_process`` (see there).

Records (kept in memory per request tag, served as JSON by ``GET /npd-trace/records?tag=…``):
- ``gen``  once per processing object (``Script.process``; an X/Y/Z plot makes one per cell);
- ``pass`` once per sampling pass (``process_before_every_sampling``: first pass, hires pass);
- ``eval`` once per denoiser evaluation: denoiser step, ``sampling_step``, the level (``params.sigma``: a sigma,
  or a model timestep for DDIM/PLMS/UniPC) and, per uncond row and 77-token chunk, a signature (sum, absolute
  sum and two fixed pseudo-random projections, float64) that tells two conditionings apart;
- ``end`` after the generation (``postprocess``).
Every record carries ``unet_rows`` and ``unet_calls``: the rows (batch items) the UNet has processed in this request
so far and in how many calls, counted by a forward pre-hook on ``sd_model.model.diffusion_model`` (absent in the
stand-in, which counts its own calls). The calls show whether auto mode's measurement joined the WebUI's own call.

``POST /npd-trace/timing`` measures, inside the WebUI process and under its queue lock, the wall time of
encoding the empty negative prompt and of one UNet evaluation (see ``timing``).
"""

from __future__ import annotations

import collections
import statistics
import threading
import time

import torch
from modules import script_callbacks, scripts, shared

VERSION = 1
CHUNK = 77
MAX_TAGS = 200

_lock = threading.Lock()
_records: collections.OrderedDict = collections.OrderedDict()  # tag -> list of records
_current = {"tag": None, "unet_rows": 0, "unet_calls": 0}
SINK = None
"""set to a list to receive the records directly (the stand-in does); they then carry ``uncond_tensor``"""


def _append(rec: dict) -> None:
    rec["unet_rows"] = _current["unet_rows"]
    rec["unet_calls"] = _current["unet_calls"]
    if SINK is not None:
        SINK.append(rec)
        return
    tag = _current["tag"]
    with _lock:
        if tag not in _records:
            _records[tag] = []
            while len(_records) > MAX_TAGS:
                _records.popitem(last=False)
        _records[tag].append(rec)


_weights: dict = {}


def _projections(n: int) -> torch.Tensor:
    w = _weights.get(n)
    if w is None:
        i = torch.arange(n, dtype=torch.float64)
        w = torch.stack([torch.sin(i * 0.7371 + 0.5), torch.cos(i * 0.3119 + 1.3)])
        _weights[n] = w
    return w


def signatures(t: torch.Tensor) -> list:
    """[row][chunk] -> [sum, abs sum, projection 1, projection 2] of a [B, 77*k, D] (or [B, V]) tensor."""
    t = t.detach().to("cpu", torch.float64)
    if t.ndim == 1:  # one number per row (Flux's guidance)
        t = t[:, None, None]
    if t.ndim == 2:
        t = t[:, None, :]
    rows = []
    for row in t:
        chunks = row.split(CHUNK, dim=0) if row.shape[0] % CHUNK == 0 else [row]
        sig = []
        for c in chunks:
            flat = c.reshape(-1)
            proj = _projections(flat.numel()) @ flat
            sig.append([float(flat.sum()), float(flat.abs().sum()), float(proj[0]), float(proj[1])])
        rows.append(sig)
    return rows


def _describe(c) -> dict | None:
    if c is None:
        return None
    if isinstance(c, dict):
        return {k: _describe(v) for k, v in c.items()}
    if isinstance(c, torch.Tensor):
        return {"shape": list(c.shape), "rows": signatures(c)}
    return {"type": type(c).__name__}


def _level(sigma) -> tuple:
    if isinstance(sigma, torch.Tensor):
        flat = sigma.detach().reshape(-1).double().cpu()
        return float(flat[0]), [float(v) for v in flat]
    return (None if sigma is None else float(sigma)), None


def _p_info(p) -> dict:
    return {
        "class": type(p).__name__,
        "sampler": getattr(p, "sampler_name", None),
        "scheduler": getattr(p, "scheduler", None),
        "steps": getattr(p, "steps", None),
        "is_hr_pass": bool(getattr(p, "is_hr_pass", False)),
        "batch_size": getattr(p, "batch_size", None),
        "width": getattr(p, "width", None),
        "height": getattr(p, "height", None),
    }


def _count_unet(module, args) -> None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and x.ndim > 0:
        _current["unet_rows"] += int(x.shape[0])
        _current["unet_calls"] += 1


def _unet_module():
    """The UNet module: ``sd_model.model.diffusion_model`` in A1111, under ``forge_objects.unet.model`` in forks."""
    model = shared.sd_model
    forge_unet = getattr(getattr(model, "forge_objects", None), "unet", None)
    for owner in (getattr(forge_unet, "model", None), getattr(model, "model", None)):
        unet = getattr(owner, "diffusion_model", None)
        if isinstance(unet, torch.nn.Module):
            return unet
    return None


def _hook_unet() -> None:
    unet = _unet_module()
    if unet is not None and not getattr(unet, "_npd_trace_hooked", False):
        unet.register_forward_pre_hook(_count_unet)
        unet._npd_trace_hooked = True


def on_cfg_denoiser(params) -> None:
    try:
        _hook_unet()  # a refiner of another architecture (SDXL's) is a new model object, loaded mid-pass
        d = params.denoiser
        level, levels = _level(params.sigma)
        rec = {
            "event": "eval",
            "denoiser_step": getattr(d, "step", None),
            "sampling_step": params.sampling_step,
            "total_sampling_steps": params.total_sampling_steps,
            "level": level,
            "levels": levels,
            "x_shape": list(params.x.shape),
            "uncond": _describe(params.text_uncond),
            "cond_shape": list(params.text_cond.shape) if isinstance(params.text_cond, torch.Tensor) else None,
        }
        if SINK is not None:
            u = params.text_uncond
            rec["uncond_tensor"] = (
                None if u is None else {k: v.clone() for k, v in u.items()} if isinstance(u, dict) else u.clone()
            )
        _append(rec)
    except Exception as e:  # a tracer must never break a generation
        print(f"[npd-trace] eval record failed: {e!r}")


def _register(register, fn, name: str) -> None:
    try:
        register(fn, name=name)
    except TypeError:  # forks whose script_callbacks take no name
        register(fn)


_register(script_callbacks.on_cfg_denoiser, on_cfg_denoiser, "npd_trace")


class NpdTraceScript(scripts.Script):
    def title(self) -> str:
        return "NPD trace"

    def show(self, is_img2img: bool) -> object:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        tab = "img2img" if is_img2img else "txt2img"
        return [
            gr.Textbox(value="", visible=False, elem_id=f"npd_trace_tag_{tab}"),
            gr.JSON(value=None, visible=False, elem_id=f"npd_trace_negatives_{tab}"),
        ]

    def before_process(self, p, tag="", negative_prompts=None, *args) -> None:  # noqa: ANN001
        """``negative_prompts`` (a list, one per image): per-image negatives, which the API cannot ask for. Given as
        the processing's ``negative_prompt`` list before anything reads it: v1.10.1's setup_prompts (after
        before_process, before every script's process) takes such a list as ``all_negative_prompts``."""
        if isinstance(negative_prompts, list) and negative_prompts:
            p.negative_prompt = [str(x) for x in negative_prompts]

    def process(self, p, tag="", *args) -> None:  # noqa: ANN001
        try:
            if tag != _current["tag"]:
                _current["tag"], _current["unet_rows"], _current["unet_calls"] = tag or None, 0, 0
            _hook_unet()
            _append({"event": "gen", "tag": tag or None, "seed": getattr(p, "seed", None), **_p_info(p)})
        except Exception as e:
            print(f"[npd-trace] gen record failed: {e!r}")

    def process_before_every_sampling(self, p, *args, **kwargs) -> None:  # noqa: ANN001
        try:
            _hook_unet()
            x = kwargs.get("x")
            _append({"event": "pass", "x_shape": list(x.shape) if hasattr(x, "shape") else None, **_p_info(p)})
        except Exception as e:
            print(f"[npd-trace] pass record failed: {e!r}")

    def postprocess(self, p, processed, *args) -> None:  # noqa: ANN001
        try:
            _append({"event": "end", "infotexts": list(getattr(processed, "infotexts", []) or [])})
        except Exception as e:
            print(f"[npd-trace] end record failed: {e!r}")


def _median_seconds(fn, repeats: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "all_s": times}


def timing(sizes=(64,), batch: int = 2, repeats: int = 5) -> dict:
    """Wall time of encoding the empty negative prompt the WebUI's way vs one UNet evaluation of `batch` rows."""
    from modules import devices, prompt_parser

    model = shared.sd_model
    out = {"torch_threads": torch.get_num_threads(), "checkpoint": getattr(model, "sd_model_checkpoint", None)}
    with torch.no_grad(), devices.autocast():

        def encode():
            return model.get_learned_conditioning(
                prompt_parser.SdConditioning([""], is_negative_prompt=True, width=64, height=64)
            )

        out["encode_empty"] = _median_seconds(encode, repeats)
        cond = model.get_learned_conditioning([""] * batch)
        for size in sizes:
            x = torch.randn(batch, 4, size // 8, size // 8, device=devices.device, dtype=devices.dtype_unet)
            t = torch.full((batch,), 500, device=devices.device, dtype=torch.long)
            out[f"unet_{size}x{size}_batch{batch}"] = _median_seconds(
                lambda x=x, t=t: model.apply_model(x, t, cond), repeats if size <= 256 else max(1, repeats // 2)
            )
    return out


def _on_app_started(demo, app) -> None:
    from fastapi import Body

    @app.get("/npd-trace/version")
    def version():
        return {"version": VERSION}

    @app.get("/npd-trace/records")
    def records(tag: str):
        with _lock:
            return {"tag": tag, "records": list(_records.get(tag, []))}

    @app.post("/npd-trace/timing")
    def run_timing(body: dict = Body(default={})):  # noqa: B008
        from modules.call_queue import queue_lock

        with queue_lock:
            return timing(
                sizes=tuple(body.get("sizes", [64])),
                batch=int(body.get("batch", 2)),
                repeats=int(body.get("repeats", 5)),
            )


_register(script_callbacks.on_app_started, _on_app_started, "npd_trace_api")
