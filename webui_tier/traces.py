"""Run a scenario in the real WebUI (HTTP API) or in the stand-in, and reduce it to a comparable trace.

Both sides run the same request body with the trace extension (``trace_extension/scripts/zz_npd_trace.py``)
installed. A trace is ``{"gens": [{"passes": [{"is_hr_pass", "steps", "evals": [{"denoiser_step",
"sampling_step", "level", "labels"}]}]}], "unet_rows", "infotexts"}``; ``labels`` holds one label per uncond row:
the control whose uncond that row equals (``EMPTY``, ``NEGATIVE``, …), or ``OTHER``.

Controls: the same request with the extension off, one Euler step, batch size 1 and the control's changes (negative
prompt "" for EMPTY). Real WebUI: rows are matched by the trace's per-chunk signatures (equal to rel. 1e-5 of the
chunk's absolute sum: one-row and batched text-encoder calls may differ in the last bits). Stand-in: by the uncond
tensors themselves (atol ``TENSOR_ATOL``). A row of k chunks matches a control of m chunks when k is a multiple of m
and every chunk equals the control's chunk at the same position modulo m (an empty prompt padded to a long negative's
length is the empty chunk repeated).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import re
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE_EXTENSION = ROOT / "webui_tier" / "trace_extension"
TRACE_TITLE = "NPD trace"
NPD_TITLE = "Negative Prompt Delay"
SIGNATURE_RTOL = 1e-5
TENSOR_ATOL = 1e-4
"""The stand-in's rows against its controls: the fake text encoder's one-row and batched encodings of "" differed by
5.02e-5 now and then on a loaded 2-core machine (2 of 10 runs, 2026-12-06; rows of different prompts differ by far
more), which the earlier 1e-6 labelled OTHER."""


# --- request bodies ---------------------------------------------------------------------------------------------


def control_payload(payload: dict, changes: dict) -> dict:
    """The control request for a scenario's payload: extension off, one Euler step, batch 1, plus ``changes``."""
    p = copy.deepcopy(payload)
    for key in (
        "script",
        "init_image",
        "enable_hr",
        "hr_scale",
        "hr_upscaler",
        "hr_second_pass_steps",
        "denoising_strength",
        "n_iter",
        "refiner_checkpoint",
        "refiner_switch_at",
        "mask_image",
        "negative_prompts",
    ):
        p.pop(key, None)
    p.update(steps=1, sampler_name="Euler", scheduler="Automatic", batch_size=1)
    p["alwayson_scripts"] = {NPD_TITLE: {"args": [False, 0]}}
    for key, value in changes.items():
        if key == "override_settings":
            p.setdefault("override_settings", {}).update(value)
        else:
            p[key] = value
    return p


def resolve_script_args(script: dict, script_info: list[dict], is_img2img: bool) -> tuple[str, list]:
    """``{"name": title, "args": {label: value}}`` -> (script_name, script_args) by the side's script-info: defaults
    from each arg's value; a label names its first arg of that label; a value for an arg with choices that is one
    of its labels becomes its index (the X/Y/Z axis dropdowns are index-typed)."""
    name = script["name"].lower()
    info = next((s for s in script_info if s["name"] == name and bool(s["is_img2img"]) == is_img2img), None)
    if info is None:
        raise KeyError(f"script {script['name']!r} not in script-info")
    args = [a.get("value") for a in info["args"]]
    labels = [a.get("label") for a in info["args"]]
    for label, value in script["args"].items():
        i = labels.index(label)
        choices = info["args"][i].get("choices")
        if choices and isinstance(value, str) and value in choices:
            value = choices.index(value)
        args[i] = value
    return name, args


def add_fork_hires_fields(body: dict) -> None:
    """The forks' APIs need their own hires fields; A1111 (and the stand-in's A1111) ignore unknown fields."""
    if body.get("enable_hr"):
        body.setdefault("hr_cfg", body.get("cfg_scale", 7.0))  # Forge, Neo, reForge (API default 1: no uncond)
        body.setdefault("hr_cfg_scale", body.get("cfg_scale", 7.0))  # Classic (API default None fails)
        body.setdefault("hr_additional_modules", ["Use same choices"])  # Forge (None fails)


def half_mask_png_base64(size: int) -> str:
    """An inpainting mask: the left half white (repainted), the right half black (kept)."""
    from PIL import Image

    buf = io.BytesIO()
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size // 2, size))
    mask.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def trace_options(body: dict) -> list:
    """The trace extension's arguments after the tag, taken out of a scenario's body: ``negative_prompts`` (one per
    image; the API takes one negative for the whole batch, the trace extension sets the list in before_process)."""
    negatives = body.pop("negative_prompts", None)
    return [negatives] if negatives else []


def half_mask_tensor(size: int):
    """The stand-in's form of ``half_mask_png_base64``: [H, W] in [0, 1], the left half 1 (repainted)."""
    import torch

    mask = torch.zeros(size, size)
    mask[:, : size // 2] = 1.0
    return mask


def gray_png_base64(size: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# --- sides ------------------------------------------------------------------------------------------------------


class RealWebUI:
    """A running WebUI (``WEBUI_URL``) with the extension and the trace extension installed."""

    name = "webui"

    def __init__(self, url: str, timeout: float = 1800) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._script_info = None

    def _request(self, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{path}: HTTP {e.code}: {e.read()[:2000]!r}") from e

    def check(self) -> None:
        try:
            self._request("/npd-trace/version")
        except Exception as e:
            raise RuntimeError(
                f"{self.url} has no trace extension ({e}); install it with bash webui_tier/install.sh WEBUI_DIR and "
                "restart the WebUI"
            ) from e
        names = {s["name"] for s in self.script_info()}
        if NPD_TITLE.lower() not in names:
            raise RuntimeError(f"{self.url}: the extension is not installed (script-info has no {NPD_TITLE!r})")

    def script_info(self) -> list[dict]:
        if self._script_info is None:
            self._script_info = self._request("/sdapi/v1/script-info")
        return self._script_info

    def run(self, endpoint: str, payload: dict) -> dict:
        body = copy.deepcopy(payload)
        if "init_image" in body:
            body["init_images"] = [gray_png_base64(int(body.pop("init_image").removeprefix("gray")))]
        if "mask_image" in body:  # "half64": the left half of a 64x64 image repainted
            body["mask"] = half_mask_png_base64(int(body.pop("mask_image").removeprefix("half")))
        if "script" in body:
            body["script_name"], body["script_args"] = resolve_script_args(
                body.pop("script"), self.script_info(), endpoint == "img2img"
            )
        add_fork_hires_fields(body)
        tag = uuid.uuid4().hex
        body.setdefault("alwayson_scripts", {})[TRACE_TITLE] = {"args": [tag, *trace_options(body)]}
        response = self._request(f"/sdapi/v1/{endpoint}", body)
        records = self._request(f"/npd-trace/records?tag={tag}")["records"]
        if not records:
            raise RuntimeError("the trace extension recorded nothing for this request")
        last = records[-1]
        return {
            "records": records,
            "unet_rows": last["unet_rows"],
            "unet_calls": last.get("unet_calls"),
            "images": response.get("images", []),
        }

    def timing(self, **body) -> dict:
        return self._request("/npd-trace/timing", body)


class StandIn:
    """The stand-in (webui_standin) with the extension and the trace extension, driven through its API object."""

    name = "standin"

    def __init__(self, host: str = "a1111") -> None:
        for path in (str(ROOT), str(ROOT / "webui_standin")):
            if path not in sys.path:
                sys.path.insert(0, path)
        import harness
        from fake_models import FakeSD1Model, FakeSDXLModel, FakeSDXLRefinerModel
        from modules import scripts, sd_models

        from webui_tier import scenarios

        self.harness = harness
        self.model = FakeSD1Model(name="random-sd15")
        self.checkpoints = {
            scenarios.REFINER_CHECKPOINT: FakeSD1Model(seed=7, name=scenarios.REFINER_CHECKPOINT),
            scenarios.SDXL_CHECKPOINT: FakeSDXLModel(name=scenarios.SDXL_CHECKPOINT),
            scenarios.SDXL_REFINER_CHECKPOINT: FakeSDXLRefinerModel(name=scenarios.SDXL_REFINER_CHECKPOINT),
        }
        harness.start(str(ROOT), self.model, more_extensions=[str(TRACE_EXTENSION)], host=host)
        for model in self.checkpoints.values():
            sd_models.register_checkpoint(model)
        self.api = harness.api()
        self.tracer = next(d.module for d in scripts.scripts_data if d.path.endswith("zz_npd_trace.py"))
        self._sd_models = sd_models

    def script_info(self) -> list[dict]:
        return [s.dict() for s in self.api.get_script_info()]

    def run(self, endpoint: str, payload: dict) -> dict:
        import torch

        body = copy.deepcopy(payload)
        if "init_image" in body:
            size = int(body.pop("init_image").removeprefix("gray"))
            body["init_images"] = [torch.full((3, size, size), 128 / 255)]
        if "mask_image" in body:  # "half64", as RealWebUI.run sends it (a tensor instead of a PNG)
            body["mask"] = half_mask_tensor(int(body.pop("mask_image").removeprefix("half")))
        if "script" in body:
            body["script_name"], body["script_args"] = resolve_script_args(
                body.pop("script"), self.script_info(), endpoint == "img2img"
            )
        add_fork_hires_fields(body)
        body.setdefault("alwayson_scripts", {})[TRACE_TITLE] = {"args": ["standin", *trace_options(body)]}
        # the stand-in holds one model object: a control on another checkpoint swaps the object for the request
        checkpoint = (body.get("override_settings") or {}).pop("sd_model_checkpoint", None)
        if checkpoint is not None:
            self.harness.switch_model(self.checkpoints[checkpoint])
        # a refiner of another architecture runs as a new model object (a copy of the registered one), whose
        # recorded calls are the registered one's list: count every registered model's list once
        calls = {id(m.calls): m.calls for m in [self.model, *self.checkpoints.values()]}
        for m in [self.model, *self.checkpoints.values()]:
            m.reset_calls()
        self.tracer.SINK = sink = []
        try:
            if endpoint == "img2img":
                self.api.img2imgapi(body)
            else:
                self.api.text2imgapi(body)
        finally:
            self.tracer.SINK = None
            if checkpoint is not None:
                self.harness.switch_model(self.model)
        return {
            "records": sink,
            "unet_rows": sum(c.x_shape[0] for recorded in calls.values() for c in recorded),
            "unet_calls": sum(len(recorded) for recorded in calls.values()),
        }


# --- classification -----------------------------------------------------------------------------------------------


def _signature_close(a: list, b: list) -> bool:
    tol = SIGNATURE_RTOL * max(abs(a[1]), abs(b[1]), 1.0)
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _signature_row_matches(row: list, control: list) -> bool:
    k, m = len(row), len(control)
    return k % m == 0 and all(_signature_close(row[i], control[i % m]) for i in range(k))


def _tensor_row_matches(row, control) -> bool:
    import torch

    k, m = row.shape[0], control.shape[0]
    if k % m or row.shape[1:] != control.shape[1:]:  # another chunk count or width (the SDXL refiner's 1280)
        return False
    return bool(
        torch.allclose(
            row.reshape(k // m, *control.shape), control.expand(k // m, *control.shape), rtol=0, atol=TENSOR_ATOL
        )
    )


def _crossattn(c):
    return c["crossattn"] if isinstance(c, dict) else c


def _row_references(side, run: dict, with_vector: bool = False) -> object:
    """The uncond row 0 of the control's first evaluation (signatures, or the tensor on the stand-in). With
    ``with_vector`` (SDXL), a ``RowWithVector``: the cross-attention row, its width and the ``vector`` row."""
    first = next(r for r in run["records"] if r["event"] == "eval")
    if isinstance(side, StandIn):
        u = first["uncond_tensor"]
        row = _crossattn(u)[0]
        if with_vector:
            return RowWithVector(row, int(row.shape[-1]), u["vector"][0])
        return row
    u = first["uncond"]
    part = u["crossattn"] if "crossattn" in u else u
    if with_vector:
        return RowWithVector(part["rows"][0], int(part["shape"][-1]), u["vector"]["rows"][0], u["vector"]["shape"][-1])
    return part["rows"][0]


class RowWithVector(tuple):
    """An SDXL uncond row told apart by cross-attention and ``vector`` both: ``(rows, width, vector[, vector width])``.
    Zero cross-attention rows (SDXL's empty negative) of the base (2048 wide) and of the refiner (1280) have equal
    signatures; the width and the vector (pooled text, sizes, the refiner's aesthetic score) tell them apart."""

    def __new__(cls, *parts):
        return super().__new__(cls, parts)


def _row_matches(side, row, control) -> bool:
    if isinstance(control, RowWithVector):
        if not isinstance(row, RowWithVector) or row[1] != control[1] or row[3:] != control[3:]:
            return False
        if isinstance(side, StandIn):
            same_vector = row[2].shape == control[2].shape and _tensor_row_matches(row[2][None], control[2][None])
            return same_vector and _tensor_row_matches(row[0], control[0])
        return _signature_row_matches(row[2], control[2]) and _signature_row_matches(row[0], control[0])
    if isinstance(side, StandIn):
        return _tensor_row_matches(row, control)
    return _signature_row_matches(row, control)


def _uncond_rows(side, rec: dict, with_vector: bool) -> list | None:
    """The uncond rows of one evaluation in the form ``_row_references`` gives; None without an uncond."""
    if isinstance(side, StandIn):
        u = rec["uncond_tensor"]
        if u is None:  # no unconditional branch (CFG scale 1 in Forge and Neo)
            return None
        rows = list(_crossattn(u))
        if with_vector:
            return [RowWithVector(r, int(r.shape[-1]), v) for r, v in zip(rows, u["vector"], strict=True)]
        return rows
    u = rec["uncond"]
    if u is None:
        return None
    part = u["crossattn"] if "crossattn" in u else u
    if with_vector:
        width, vector = int(part["shape"][-1]), u["vector"]
        return [
            RowWithVector(r, width, v, vector["shape"][-1]) for r, v in zip(part["rows"], vector["rows"], strict=True)
        ]
    return part["rows"]


def _row_labels(side, rec: dict, references: dict) -> list[str]:
    with_vector = any(isinstance(ref, RowWithVector) for ref in references.values())
    rows = _uncond_rows(side, rec, with_vector)
    if rows is None:
        return []
    return [next((label for label, ref in references.items() if _row_matches(side, row, ref)), "OTHER") for row in rows]


def normalise(side, run: dict, references: dict) -> dict:
    gens, infotexts = [], []
    for rec in run["records"]:
        ev = rec["event"]
        if ev == "gen":
            gens.append({"class": rec["class"], "passes": []})
        elif ev == "pass":
            gens[-1]["passes"].append(
                {"is_hr_pass": rec["is_hr_pass"], "steps": rec["steps"], "sampler": rec["sampler"], "evals": []}
            )
        elif ev == "eval":
            gens[-1]["passes"][-1]["evals"].append(
                {
                    "denoiser_step": rec["denoiser_step"],
                    "sampling_step": rec["sampling_step"],
                    "level": rec["level"],
                    "labels": _row_labels(side, rec, references),
                }
            )
        elif ev == "end":
            infotexts += rec["infotexts"]
    return {"gens": gens, "unet_rows": run["unet_rows"], "unet_calls": run.get("unet_calls"), "infotexts": infotexts}


class Runner:
    """Runs scenarios on one side, caching control runs (most scenarios share theirs)."""

    def __init__(self, side) -> None:
        self.side = side
        self._controls: dict[str, object] = {}

    def reference(self, payload: dict, changes: dict, with_vector: bool = False):
        body = control_payload(payload, changes)
        key = json.dumps(body, sort_keys=True)
        if key not in self._controls:
            self._controls[key] = self.side.run("txt2img", body)
        return _row_references(self.side, self._controls[key], with_vector)

    def trace(self, scenario: dict, default_controls: dict) -> dict:
        controls = scenario.get("controls", default_controls)
        with_vector = scenario.get("rows") == "crossattn+vector"
        references = {label: self.reference(scenario["payload"], ch, with_vector) for label, ch in controls.items()}
        labels = list(references)
        same = [
            (a, b)
            for i, a in enumerate(labels)
            for b in labels[i + 1 :]
            if _row_matches(self.side, references[a], references[b])
        ]
        if same:
            raise AssertionError(f"{self.side.name}: controls {same} encode alike: the rows cannot be told apart")
        run = self.side.run(scenario["endpoint"], scenario["payload"])
        return normalise(self.side, run, references)


# --- comparison ---------------------------------------------------------------------------------------------------

_NPD_KEY = re.compile(r"(Negative delay[^:,]*): ([^,]*)")


def npd_infotext(infotexts: list[str]) -> list[dict]:
    return [dict(_NPD_KEY.findall(t)) for t in infotexts]


def _rel_close(a: float, b: float, rtol: float = 1e-3) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


def compare_exact(real: dict, standin: dict, calls: bool = True) -> list[str]:
    """Every difference between two traces (empty when they agree). ``calls``: the UNet's calls too, where the stand-in
    models how the host groups rows into calls (AUTOMATIC1111; the forks' flavour does not split a batch by token
    length as they do, so there only the rows are compared)."""
    diffs = []
    if len(real["gens"]) != len(standin["gens"]):
        return [f"generations: webui {len(real['gens'])}, stand-in {len(standin['gens'])}"]
    for g, (gr, gs) in enumerate(zip(real["gens"], standin["gens"], strict=True)):
        if len(gr["passes"]) != len(gs["passes"]):
            diffs.append(f"gen {g}: passes webui {len(gr['passes'])}, stand-in {len(gs['passes'])}")
            continue
        for k, (pr, ps) in enumerate(zip(gr["passes"], gs["passes"], strict=True)):
            where = f"gen {g} pass {k}"
            if len(pr["evals"]) != len(ps["evals"]):
                diffs.append(f"{where}: evaluations webui {len(pr['evals'])}, stand-in {len(ps['evals'])}")
            for er, es in zip(pr["evals"], ps["evals"], strict=False):
                at = f"{where} eval {er['denoiser_step']}"
                for key in ("denoiser_step", "sampling_step"):
                    if er[key] != es[key]:
                        diffs.append(f"{at}: {key} webui {er[key]}, stand-in {es[key]}")
                if not _rel_close(er["level"], es["level"]):
                    diffs.append(f"{at}: level webui {er['level']:.6g}, stand-in {es['level']:.6g}")
                if er["labels"] != es["labels"]:
                    diffs.append(f"{at}: rows webui {er['labels']}, stand-in {es['labels']}")
    if real["unet_rows"] != standin["unet_rows"]:
        diffs.append(f"UNet rows: webui {real['unet_rows']}, stand-in {standin['unet_rows']}")
    counted = real.get("unet_calls"), standin.get("unet_calls")
    if calls and None not in counted and counted[0] != counted[1]:  # e.g. auto's measurement joined on one side only
        diffs.append(f"UNet calls: webui {counted[0]}, stand-in {counted[1]}")
    ir, is_ = npd_infotext(real["infotexts"]), npd_infotext(standin["infotexts"])
    if ir != is_:
        diffs.append(f"infotext: webui {ir}, stand-in {is_}")
    return diffs


def latched_errors(trace: dict, threshold: float) -> list[str]:
    """Each row: EMPTY up to the first evaluation at or below ``threshold``, NEGATIVE from it on."""
    errors = []
    for g, gen in enumerate(trace["gens"]):
        for k, p in enumerate(gen["passes"]):
            reached = False
            for e in p["evals"]:
                reached = reached or e["level"] <= threshold * (1 + 1e-5)
                want = "NEGATIVE" if reached else "EMPTY"
                if any(lab != want for lab in e["labels"]):
                    errors.append(
                        f"gen {g} pass {k} eval {e['denoiser_step']} level {e['level']:.5g}: "
                        f"rows {e['labels']}, expected {want} (threshold {threshold:.5g})"
                    )
    return errors


def auto_errors(trace: dict, earliest: int, latest: int, joined: bool | None = None) -> list[str]:
    """Auto mode, one pass, fixed-structure sampler: image i switched at step k_i (infotext): its rows are EMPTY
    for steps 0..k_i (a measured switch: the step's extra evaluation becomes its uncond, the callback saw EMPTY)
    or 0..k_i-1 (a forced switch at the latest step), NEGATIVE after; the UNet ran one extra row per image and
    measured step (steps earliest..min(k_i, latest - 1)). ``joined``: the measurement joins the WebUI's own model
    call (AUTOMATIC1111: one call per evaluation) or has calls of its own (the forks' post-CFG hook: one more per
    measured step); None: not checked."""
    errors = []
    (gen,) = trace["gens"]
    (p,) = gen["passes"]
    info = npd_infotext(trace["infotexts"])
    steps = [int(v) for v in info[0]["Negative delay steps"].split()]
    batch = len(p["evals"][0]["labels"])
    if len(steps) != batch:
        return [f"infotext steps {steps} for a batch of {batch}"]
    for i, k in enumerate(steps):
        empties = k + 1 if k < latest else k
        want = ["EMPTY"] * empties + ["NEGATIVE"] * (len(p["evals"]) - empties)
        got = [e["labels"][i] for e in p["evals"]]
        if got != want:
            errors.append(f"image {i} (switch step {k}): rows {got}, expected {want}")
    extra = sum(max(0, min(k, latest - 1) - earliest + 1) for k in steps)
    base = 2 * batch * len(p["evals"])
    if trace["unet_rows"] != base + extra:
        errors.append(f"UNet rows {trace['unet_rows']}, expected {base} + {extra} extra for steps {steps}")
    if joined is not None and trace.get("unet_calls") is not None:
        measured = max(max(0, min(k, latest - 1) - earliest + 1) for k in steps)
        calls = len(p["evals"]) + (0 if joined else measured)
        if trace["unet_calls"] != calls:
            how = "joined to the WebUI's calls" if joined else "in calls of their own"
            errors.append(f"UNet calls {trace['unet_calls']}, expected {calls} (measurements {how})")
    return errors


def _descriptor_diff(a, b, where: str) -> list[str]:
    """Differences between two ``_describe`` results of the trace extension (every key, shape and row signature)."""
    if isinstance(a, dict) and "rows" in a and isinstance(b, dict) and "rows" in b:
        if a["shape"] != b["shape"]:
            return [f"{where}: shape {a['shape']} vs {b['shape']}"]
        same = all(
            _signature_close(x, y)
            for ra, rb in zip(a["rows"], b["rows"], strict=True)
            for x, y in zip(ra, rb, strict=True)
        )
        return [] if same else [f"{where}: values differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} vs {sorted(b)}"]
        return [d for key in a for d in _descriptor_diff(a[key], b[key], f"{where} {key}")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def own_empty_errors(run: dict, empty: dict, negative: dict, delay: int, threshold: float | None = None) -> list[str]:
    """A request with a fixed delay, against the same request with the extension off and negative "" (Neo's own empty
    negative) and with the negative: each evaluation's whole uncond (every key, shape and row) equals the empty
    control's evaluation of the same index before ``delay`` and the negative control's from it; levels alike.
    ``threshold`` (img2img, inpainting, hires; one evaluation per step): the level of step ``delay`` in txt2img, and
    an evaluation is before the switch while its level is above it (the noise-level rule)."""
    evals = [[r for r in x["records"] if r["event"] == "eval"] for x in (run, empty, negative)]
    if not evals[0] or len({len(e) for e in evals}) != 1:
        return [f"evaluations: delayed {len(evals[0])}, empty {len(evals[1])}, negative {len(evals[2])}"]
    errors = []
    for i, (mine, own, neg) in enumerate(zip(*evals, strict=True)):
        if not (_rel_close(mine["level"], own["level"], 1e-6) and _rel_close(mine["level"], neg["level"], 1e-6)):
            errors.append(f"eval {i}: level {mine['level']:.6g} vs controls {own['level']:.6g} / {neg['level']:.6g}")
        if threshold is None:
            early = mine["denoiser_step"] < delay
        else:
            early = mine["level"] > threshold * (1 + 1e-4)
        want, control = ("EMPTY", own) if early else ("NEGATIVE", neg)
        errors += _descriptor_diff(mine["uncond"], control["uncond"], f"eval {i} (expected {want})")
    if not _descriptor_diff(evals[1][0]["uncond"], evals[2][0]["uncond"], ""):
        errors.append("the empty and the negative control encode alike: the rows cannot be told apart")
    return errors


def decode_images(run: dict) -> list:
    """The response's images (base64 PNG) as uint8 arrays [H, W, C]."""
    import numpy as np
    from PIL import Image

    raw = [base64.b64decode(b64.split(",")[-1]) for b64 in run["images"]]
    return [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in raw]


def own_auto_errors(auto: dict, fixed: dict[int, dict], earliest: int, latest: int, tolerance: int = 1) -> list[str]:
    """Auto mode in a host whose model has no stand-in counterpart (Forge Neo's flow engines), one pass, one evaluation
    per step: image i of ``auto`` switched at step k_i (infotext) and must be image i of the same request with the fixed
    delay k_i (``fixed[k_i]``) up to ``tolerance`` levels of 255 (float rounding: the switched images' negative comes
    from the measurement's own call); the UNet ran one extra call per measured step (earliest..min(max k_i,
    latest - 1)) over each image's negative, and its prompt too where Neo batches the two by repeating tokens
    (``forge_auto.Seam``), and nothing else."""
    info = npd_infotext([r for r in auto["records"] if r["event"] == "end"][-1]["infotexts"])
    steps = [int(v) for v in info[0]["Negative delay steps"].split()]
    images = decode_images(auto)
    if len(steps) != len(images):
        return [f"infotext steps {steps} for {len(images)} images"]
    errors = []
    for i, k in enumerate(steps):
        want = decode_images(fixed[k])[i]
        diff = int(abs(images[i].astype(int) - want.astype(int)).max())
        if diff > tolerance:
            errors.append(f"image {i} (switch step {k}): max pixel difference {diff} from the fixed delay {k}")
    rows = len(images)
    measured = max(0, min(max(steps), latest - 1) - earliest + 1)
    per_image = 2 if _batched_by_repeating(fixed[steps[0]]) else 1
    extra = auto["unet_rows"] - fixed[steps[0]]["unet_rows"]
    if extra != per_image * rows * measured:
        errors.append(
            f"UNet rows: auto ran {extra} more than fixed, expected {per_image} x {rows} x {measured} measured steps"
        )
    return errors


def _batched_by_repeating(run: dict) -> bool:
    """Whether Neo batches this run's prompt with its negative by repeating their tokens (their lengths differ and
    their least common multiple is at most 4 times the shorter: N ``ConditionCrossAttn.can_concat``), read from the
    last evaluation's shapes (the negative's by then)."""
    last = [r for r in run["records"] if r["event"] == "eval"][-1]
    uncond = last["uncond"]
    negative = (uncond.get("crossattn") or {}).get("shape") if "crossattn" in uncond else uncond.get("shape")
    prompt = last["cond_shape"]
    if not negative or not prompt or negative[1] == prompt[1]:
        return False
    return math.lcm(negative[1], prompt[1]) // min(negative[1], prompt[1]) <= 4


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))


OUT_DIR = Path(os.environ.get("WEBUI_TIER_OUT", ROOT / "webui_tier" / "out"))
