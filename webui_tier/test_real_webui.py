"""Trace comparison against a real WebUI v1.10.1: each scenario of ``scenarios.py`` runs in the WebUI at
``WEBUI_URL`` and in the stand-in; per denoiser evaluation the traces must agree on the count of evaluations per
pass, ``denoiser.step``, ``sampling_step``, the level (rel. 1e-3) and, per uncond row, EMPTY or NEGATIVE; also on
the UNet rows the request ran and on the extension's infotext.

Not part of ``bash dev test`` (pytest's testpaths is ``tests``); run with
``WEBUI_URL=http://127.0.0.1:7861 bash dev test-webui`` (``-k NAME`` picks scenarios; ``WEBUI_HOST=classic``
and the like compare a running fork with the stand-in's fork flavour). Both traces of every scenario
are written to ``webui_tier/out/<name>.json``. ``WEBUI_TIMING=1`` adds the in-process timing of the empty prompt's
encoding against one UNet evaluation (``out/timing.json``).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webui_tier import traces  # noqa: E402
from webui_tier.scenarios import BY_NAME, DEFAULT_CONTROLS, SCENARIOS  # noqa: E402

WEBUI_URL = os.environ.get("WEBUI_URL")
pytestmark = pytest.mark.skipif(not WEBUI_URL, reason="set WEBUI_URL to a running WebUI with the trace extension")


@pytest.fixture(scope="session")
def webui():
    side = traces.RealWebUI(WEBUI_URL)
    side.check()
    return traces.Runner(side)


@pytest.fixture(scope="session")
def standin():
    # WEBUI_HOST=forge|neo|classic|classic-1.8|reforge: compare a running fork with the stand-in's model of it
    return traces.Runner(traces.StandIn(os.environ.get("WEBUI_HOST", "a1111")))


def unmatched(trace: dict) -> list[str]:
    return [
        f"gen {g} pass {k} eval {e['denoiser_step']}: rows {e['labels']}"
        for g, gen in enumerate(trace["gens"])
        for k, p in enumerate(gen["passes"])
        for e in p["evals"]
        if "OTHER" in e["labels"]
    ]


def reference_level(standin, payload: dict, reference: dict) -> float:
    body = {**payload, "sampler_name": reference["sampler_name"], "scheduler": reference["scheduler"]}
    run = standin.side.run("txt2img", body)
    evals = [r for r in run["records"] if r["event"] == "eval"]
    return evals[reference["delay"]]["level"]


@pytest.mark.parametrize("name", [s["name"] for s in SCENARIOS])
def test_scenario(name, webui, standin):
    sc = BY_NAME[name]
    host = os.environ.get("WEBUI_HOST", "a1111")
    if host in sc.get("not_in", {}):
        pytest.skip(f"{name} does not apply to {host}: {sc['not_in'][host]}")
    if sc.get("compare") == "own-empty":
        return own_empty(sc, webui.side)
    if sc.get("compare") == "own-auto":
        return own_auto(sc, webui.side)
    expected = standin.trace(sc, DEFAULT_CONTROLS)
    real = webui.trace(sc, DEFAULT_CONTROLS)
    traces.save(traces.OUT_DIR / f"{name}.json", {"scenario": sc, "webui": real, "standin": expected})
    diffs = [f"webui: no control matches {x}" for x in unmatched(real)]
    diffs += [f"stand-in: no control matches {x}" for x in unmatched(expected)]
    mode = sc.get("compare", "exact")
    if mode == "exact":
        diffs += traces.compare_exact(real, expected, calls=host == "a1111")
    elif mode == "latched":
        threshold = reference_level(standin, sc["payload"], sc["reference"])
        diffs += [f"webui: {e}" for e in traces.latched_errors(real, threshold)]
        diffs += [f"stand-in: {e}" for e in traces.latched_errors(expected, threshold)]
        first = [t["gens"][0]["passes"][0]["evals"][0]["level"] for t in (real, expected)]
        if not traces._rel_close(*first):
            diffs.append(f"first level: webui {first[0]:.6g}, stand-in {first[1]:.6g}")
    elif mode == "auto":
        _, _, _, _, earliest, latest = sc["payload"]["alwayson_scripts"][traces.NPD_TITLE]["args"]
        joined = host == "a1111"  # A1111 joins the measurement to its own call; the forks measure in calls of their own
        diffs += [f"webui: {e}" for e in traces.auto_errors(real, earliest, latest, joined)]
        diffs += [f"stand-in: {e}" for e in traces.auto_errors(expected, earliest, latest, joined)]
        steps = [traces.npd_infotext(t["infotexts"]) for t in (real, expected)]
        if steps[0] == steps[1]:
            diffs += traces.compare_exact(real, expected, calls=host == "a1111")
        else:  # random weights against the fake model: the detector may decide differently; structure checked above
            warnings.warn(f"auto mode decided differently: webui {steps[0]}, stand-in {steps[1]}", stacklevel=1)
    assert not diffs, f"{name}:\n" + "\n".join(diffs)


def own_empty(sc: dict, side) -> None:
    """A model only the host runs (Forge Neo's Chroma, Flux, ...): no stand-in counterpart. The delayed request against
    the same request with the extension off, once with negative "" (the host's own empty negative) and once with the
    negative (``traces.own_empty_errors``)."""
    payload = sc["payload"]
    args = payload["alwayson_scripts"][traces.NPD_TITLE]["args"]
    off = {**payload, "alwayson_scripts": {traces.NPD_TITLE: {"args": [False, 0]}}}
    bodies = [payload, {**off, "negative_prompt": ""}, off]
    by_level = sc["endpoint"] == "img2img" or bool(payload.get("enable_hr"))
    if by_level:  # the txt2img levels of the first pass's sampler, schedule and steps (extension off)
        keys = ("prompt", "negative_prompt", "steps", "width", "height", "seed", "cfg_scale", "sampler_name")
        keys += ("scheduler", "distilled_cfg_scale", "override_settings")
        bodies.append({k: off[k] for k in keys if k in off} | {"alwayson_scripts": off["alwayson_scripts"]})
    runs = _host_model(sc, side, bodies, [sc["endpoint"]] * 3 + ["txt2img"] * by_level)
    traces.save(traces.OUT_DIR / f"{sc['name']}.json", {"scenario": sc, "webui": runs})
    threshold = None
    if by_level:
        reference = runs.pop()
        threshold = [r for r in reference["records"] if r["event"] == "eval"][int(args[1])]["level"]
    diffs = traces.own_empty_errors(*runs, int(args[1]), threshold)
    assert not diffs, f"{sc['name']}:\n" + "\n".join(diffs)


def _host_model(sc: dict, side, bodies: list[dict], endpoints: list[str] | None = None) -> list[dict]:
    """Run ``bodies`` (at the scenario's endpoint, or ``endpoints``) with the scenario's model selected
    (``sc["options"]``), then restore the options."""
    host = os.environ.get("WEBUI_HOST", "a1111")
    if host not in sc["hosts"]:
        pytest.skip(f"{sc['name']} runs in {sc['hosts']} (WEBUI_HOST={host})")
    before = side._request("/sdapi/v1/options")
    side._request("/sdapi/v1/options", sc["options"])  # the model and its text encoder / VAE files
    try:
        endpoints = endpoints or [sc["endpoint"]] * len(bodies)
        return [side.run(endpoint, body) for endpoint, body in zip(endpoints, bodies, strict=True)]
    finally:
        side._request("/sdapi/v1/options", {key: before.get(key) for key in sc["options"]})


def own_auto(sc: dict, side) -> None:
    """Auto mode on a model only the host runs: each image against the same request with the fixed delay at its own
    switch step, and the UNet rows against the documented extra evaluations (``traces.own_auto_errors``)."""
    payload = sc["payload"]
    args = payload["alwayson_scripts"][traces.NPD_TITLE]["args"]
    (auto,) = _host_model(sc, side, [payload])
    info = traces.npd_infotext([r for r in auto["records"] if r["event"] == "end"][-1]["infotexts"])
    steps = sorted({int(v) for v in info[0]["Negative delay steps"].split()})
    bodies = [{**payload, "alwayson_scripts": {traces.NPD_TITLE: {"args": [True, k]}}} for k in steps]
    fixed = dict(zip(steps, _host_model(sc, side, bodies), strict=True))
    traces.save(traces.OUT_DIR / f"{sc['name']}.json", {"scenario": sc, "webui": {"auto": auto, "fixed": fixed}})
    diffs = traces.own_auto_errors(auto, fixed, int(args[4]), int(args[5]))
    assert not diffs, f"{sc['name']} (switch steps {info[0]['Negative delay steps']}):\n" + "\n".join(diffs)
    print(f"{sc['name']}: switch steps {info[0]['Negative delay steps']}, UNet rows auto {auto['unet_rows']}")


@pytest.mark.skipif(os.environ.get("WEBUI_TIMING") != "1", reason="set WEBUI_TIMING=1")
def test_timing(webui):
    """Wall time, in the WebUI process, of encoding the empty negative prompt vs one UNet evaluation (batch 2)."""
    sizes = [int(s) for s in os.environ.get("WEBUI_TIMING_SIZES", "64,512").split(",")]
    result = webui.side.timing(sizes=sizes, batch=2, repeats=5)
    traces.save(traces.OUT_DIR / "timing.json", result)
    print(json.dumps(result, indent=1))
