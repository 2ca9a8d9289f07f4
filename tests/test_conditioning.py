"""Shaping the empty prompt like the negative conditioning it replaces."""

import pytest
import torch

from lib_negative_delay.conditioning import FittedCache, UnsupportedConditioning, fit_empty


def test_sd1_tensor_batch_and_long_negative():
    empty = torch.randn(1, 77, 8)
    like = torch.randn(3, 154, 8, dtype=torch.float16)
    out = fit_empty(empty, like)
    assert out.shape == like.shape and out.dtype == torch.float16
    for row in range(3):
        for chunk in (0, 1):
            assert torch.allclose(out[row, 77 * chunk : 77 * (chunk + 1)].float(), empty[0].half().float())


def test_repeated_chunks_attend_like_one_chunk():
    """The reason padding is harmless: attention over [E; E] equals attention over E."""
    empty = torch.randn(1, 77, 16)
    q = torch.randn(1, 10, 16)
    once = torch.nn.functional.scaled_dot_product_attention(q, empty, empty)
    twice_kv = fit_empty(empty, torch.zeros(1, 154, 16))
    twice = torch.nn.functional.scaled_dot_product_attention(q, twice_kv, twice_kv)
    assert torch.allclose(once, twice, atol=1e-5)


def test_sdxl_dict():
    empty = {"crossattn": torch.zeros(1, 77, 12), "vector": torch.randn(1, 6)}
    like = {"crossattn": torch.randn(2, 231, 12), "vector": torch.randn(2, 6)}
    out = fit_empty(empty, like)
    assert out["crossattn"].shape == (2, 231, 12) and torch.count_nonzero(out["crossattn"]) == 0
    assert out["vector"].shape == (2, 6) and torch.equal(out["vector"][1], empty["vector"][0])
    assert out.shape == (2, 231, 12)  # the WebUI reads uncond.shape right after the callback


def test_odd_token_length_keeps_own_length():
    out = fit_empty(torch.randn(1, 77, 8), torch.randn(2, 80, 8))
    assert out.shape == (2, 77, 8)


@pytest.mark.parametrize(
    "empty,like",
    [
        (torch.randn(1, 77, 8), torch.randn(2, 77, 16)),
        (torch.randn(1, 77, 8), {"crossattn": torch.randn(2, 77, 8), "vector": torch.randn(2, 4)}),
        ({"crossattn": torch.randn(1, 77, 8)}, {"crossattn": torch.randn(2, 77, 8), "vector": torch.randn(2, 4)}),
        (
            {"crossattn": torch.randn(1, 77, 8), "vector": torch.randn(1, 3)},
            {"crossattn": torch.randn(2, 77, 8), "vector": torch.randn(2, 4)},
        ),
        (torch.randn(1, 77, 8), [1, 2, 3]),
    ],
)
def test_mismatches_are_reported(empty, like):
    with pytest.raises(UnsupportedConditioning):
        fit_empty(empty, like)


def test_cache_reuses_and_evicts():
    cache = FittedCache(size=2)
    empty = torch.randn(1, 77, 8)
    a = cache.get("k", empty, torch.zeros(2, 77, 8))
    assert cache.get("k", empty, torch.ones(2, 77, 8)) is a  # same shape → same tensor, no new work
    cache.get("k", empty, torch.zeros(3, 77, 8))
    cache.get("k", empty, torch.zeros(4, 77, 8))
    assert len(cache) == 2
    assert cache.get("k", empty, torch.zeros(2, 77, 8)) is not a


def test_a_controlnet_marked_negative_gives_a_marked_empty_prompt():
    from lib_negative_delay.conditioning import control_marker

    empty = torch.randn(1, 77, 8)
    marked = torch.cat([torch.full((2, 1, 8), -1024.0), torch.randn(2, 154, 8)], dim=1)
    out = fit_empty(empty, marked)
    assert out.shape == (2, 155, 8) and torch.equal(out[:, :1], marked[:, :1])
    assert torch.equal(out[:, 1:], empty.repeat(2, 2, 1))
    sdxl = fit_empty(
        {"crossattn": empty, "vector": torch.zeros(1, 4)}, {"crossattn": marked, "vector": torch.ones(2, 4)}
    )
    assert sdxl["crossattn"].shape == (2, 155, 8) and torch.all(sdxl["crossattn"][:, 0] == -1024.0)
    # not a marker: a 78-token text row, or a first row that is not +-1024 in every image
    assert control_marker(torch.randn(2, 78, 8), 77) is None
    half = marked[:, :78].clone()
    half[1, 0] = 3.0
    assert control_marker(half, 77) is None and fit_empty(empty, half).shape == (2, 77, 8)
