"""SDXL base -> SDXL refiner, per-image negatives and inpainting in the stand-in (issue 30's trace scenarios).

Facts (AUTOMATIC1111 v1.10.1): the SDXL refiner is another architecture than the base (sd_xl_refiner.yaml: OpenCLIP-G
only, its rows the whole cross-attention, a vector of pooled text, original size, crop and aesthetic score; a negative
prompt gets the low aesthetic score); loading it mid-pass builds a new model object (sd_models.reload_model_weights:
another config); ``p.sd_model`` is always the loaded model. prompt_parser.get_learned_conditioning encodes each distinct
prompt of a batch on its own, so an empty negative beside non-empty ones is SDXL's zero negative too.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TITLE, encode_empty, same

REFINER = {"Refiner": {"args": [True, "fake-sdxl-refiner.safetensors", 0.5]}}  # the built-in script (UI route)


@pytest.fixture
def base_and_refiner(sdxl):
    from fake_models import FakeSDXLRefinerModel
    from modules import sd_models

    h, model, rec = sdxl
    refiner = FakeSDXLRefinerModel(name="fake-sdxl-refiner")
    sd_models.register_checkpoint(refiner)
    return h, model, refiner, rec


def test_refiner_conditioning_is_its_own_architecture():
    from fake_models import FakeSDXLModel, FakeSDXLRefinerModel
    from modules import prompt_parser, shared

    base, refiner = FakeSDXLModel(), FakeSDXLRefinerModel()
    negative = refiner.get_learned_conditioning(
        prompt_parser.SdConditioning(["hat"], is_negative_prompt=True, width=64, height=64)
    )
    positive = refiner.get_learned_conditioning(prompt_parser.SdConditioning(["hat"], width=64, height=64))
    assert negative["crossattn"].shape == (1, 77, refiner.dim)  # OpenCLIP-G only
    assert negative["vector"].shape == (1, refiner.pooled_dim + 5 * refiner.size_embed_dim)
    assert refiner.vector_dim < base.vector_dim  # 2560 against the base's 2816
    # the same text: rows alike, the vector differs by the aesthetic score only (low for a negative)
    assert torch.equal(negative["crossattn"], positive["crossattn"])
    assert not torch.equal(negative["vector"], positive["vector"])
    shared.opts.sdxl_refiner_low_aesthetic_score = shared.opts.sdxl_refiner_high_aesthetic_score
    try:
        again = refiner.get_learned_conditioning(
            prompt_parser.SdConditioning(["hat"], is_negative_prompt=True, width=64, height=64)
        )
    finally:
        shared.opts.sdxl_refiner_low_aesthetic_score = 2.5
    assert torch.equal(again["vector"], positive["vector"])
    # an all-empty negative: text part zero, the size and aesthetic embedding stay
    empty = encode_empty(refiner, 64, 64)
    assert not empty["crossattn"].any() and not empty["vector"][:, : refiner.pooled_dim].any()
    assert empty["vector"][:, refiner.pooled_dim :].abs().sum() > 0


def test_refiner_switch_builds_a_new_model_object(base_and_refiner):
    h, base, refiner, rec = base_and_refiner
    from fake_models import FakeSDXLModel, FakeSDXLRefinerModel
    from modules import shared

    res = h.txt2img(
        prompt="a cat",
        negative_prompt="glasses",
        steps=8,
        alwayson_scripts={TITLE: {"args": [False, 0]}, **REFINER},
    )
    assert "Refiner: fake-sdxl-refiner" in res.infotexts[0]
    # the new refiner object records into the registered refiner's list (a copy of it)
    assert [c.crossattn.shape[-1] for c in refiner.calls] == [refiner.dim] * len(refiner.calls)
    widths = [(c.crossattn.shape[-1], c.vector.shape[-1]) for c in base.calls + refiner.calls]
    switch = widths.index((refiner.dim, refiner.vector_dim))
    assert 0 < switch < 8
    assert widths == [(base.dim, base.vector_dim)] * switch + [(refiner.dim, refiner.vector_dim)] * (8 - switch)
    assert type(shared.sd_model) is FakeSDXLRefinerModel
    # the next job loads the selected base again: another new object, of the base's class and hash
    h.txt2img(prompt="a cat", negative_prompt="glasses", steps=2)
    assert type(shared.sd_model) is FakeSDXLModel and shared.sd_model is not base
    assert shared.sd_model.sd_model_hash == base.sd_model_hash


def test_delay_after_the_switch_encodes_the_refiners_empty_prompt(base_and_refiner):
    h, base, refiner, rec = base_and_refiner
    from modules import prompt_parser

    rec.clear()
    h.txt2img(
        prompt="a cat",
        negative_prompt="glasses",
        steps=8,
        alwayson_scripts={TITLE: {"args": [True, 6]}, **REFINER},
    )
    refiner_negative = refiner.get_learned_conditioning(
        prompt_parser.SdConditioning(["glasses"], is_negative_prompt=True, width=64, height=64)
    )
    base_empty, refiner_empty = encode_empty(base, 64, 64), encode_empty(refiner, 64, 64)
    kinds = [
        "base"
        if same(e.uncond, base_empty)
        else "refiner"
        if same(e.uncond, refiner_empty)
        else "negative"
        if same(e.uncond, refiner_negative)
        else "other"
        for e in rec.evaluations
    ]
    switch = kinds.index("refiner")
    assert 0 < switch < 6 and kinds == ["base"] * switch + ["refiner"] * (6 - switch) + ["negative"] * 2


def test_an_empty_negative_beside_others_is_zero(sdxl):
    h, model, rec = sdxl
    from modules import prompt_parser

    rec.clear()
    h.txt2img(prompt="a cat", negative_prompt=["glasses", ""], batch_size=2, steps=6)
    empty = encode_empty(model, 64, 64)
    glasses = model.get_learned_conditioning(
        prompt_parser.SdConditioning(["glasses"], is_negative_prompt=True, width=64, height=64)
    )
    for e in rec.evaluations:  # extension off: each image its own negative, the empty one SDXL's zeros
        assert torch.equal(e.uncond["crossattn"][1], empty["crossattn"][0])
        assert torch.equal(e.uncond["vector"][1], empty["vector"][0])
        assert torch.equal(e.uncond["crossattn"][0], glasses["crossattn"][0])


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("sdxl-some-empty", [["EMPTY", "EMPTY"]] * 2 + [["NEGATIVE", "EMPTY"]] * 4),
        ("sdxl-per-image", [["EMPTY", "EMPTY"]] * 2 + [["NEGATIVE", "NEGATIVE 2"]] * 4),
        ("sdxl-all-empty", [["EMPTY", "EMPTY"]] * 6),
    ],
)
def test_trace_scenarios_with_per_image_negatives(name, rows):
    """The trace tier's route for per-image negatives (the trace extension's before_process) in the stand-in."""
    from webui_tier import traces
    from webui_tier.scenarios import BY_NAME, DEFAULT_CONTROLS

    trace = traces.Runner(traces.StandIn()).trace(BY_NAME[name], DEFAULT_CONTROLS)
    ((only,),) = [g["passes"] for g in trace["gens"]]
    assert [e["labels"] for e in only["evals"]] == rows


def test_trace_refiner_rows_are_told_apart_by_width_and_vector():
    from webui_tier import traces
    from webui_tier.scenarios import BY_NAME, DEFAULT_CONTROLS

    runner = traces.Runner(traces.StandIn())
    trace = runner.trace(BY_NAME["sdxl-refiner-delay-6"], DEFAULT_CONTROLS)
    labels = [e["labels"][0] for e in trace["gens"][0]["passes"][0]["evals"]]
    assert labels == ["EMPTY"] * 4 + ["EMPTY(refiner)"] * 2 + ["NEGATIVE(refiner)"] * 2
    # the two zero negatives differ in width and vector only
    empty, empty_refiner = (
        runner.reference(BY_NAME["sdxl-refiner-delay-6"]["payload"], c, True)
        for c in (
            {"negative_prompt": ""},
            BY_NAME["sdxl-refiner-delay-6"]["controls"]["EMPTY(refiner)"],
        )
    )
    assert not empty[0].any() and not empty_refiner[0].any() and empty[1] != empty_refiner[1]
    assert not traces._row_matches(runner.side, empty, empty_refiner)


def test_api_inpainting_mask(sdxl):
    """The stand-in's img2img API takes ``mask`` (and the inpainting fields): the kept half stays the init image."""
    h, model, rec = sdxl
    from webui_tier.traces import half_mask_tensor

    init = torch.full((3, 64, 64), 128 / 255)
    body = {"prompt": "a cat", "negative_prompt": "hat", "steps": 4, "width": 64, "height": 64, "seed": 1}
    masked = h.api().img2imgapi({**body, "init_images": [init], "mask": half_mask_tensor(64)})
    plain = h.api().img2imgapi({**body, "init_images": [init]})
    assert masked["p"].image_mask is not None and plain["p"].image_mask is None
    image = masked["images"][0]
    assert torch.allclose(image[:, :, 48:], init[:, :, 48:], atol=1 / 255)  # kept (beyond the blur)
    assert not torch.allclose(image[:, :, :16], init[:, :, :16], atol=1 / 255)  # repainted
