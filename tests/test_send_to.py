"""Send to img2img / inpaint under txt2img's gallery carries the panel's settings to the other tab.

The WebUI copies, tab to tab, the fields whose infotext target is `in` the built-in names plus the source runner's
``paste_field_names`` (see ``webui_standin/modules/infotext_utils.sent_fields``). Our targets are reader functions,
so ``paste_field_names`` lists those very functions.
"""

from __future__ import annotations

import logging

import pytest
from conftest import TITLE

# the analysis checkbox (last) is not in the infotext: "Send to" leaves img2img's as it was (here unticked)
AUTO_ARGS = [True, 5, True, 0.7, 1, 6, "steps", False]
PERCENT_ARGS = [True, 20, True, 0.7, 15, 40, "%", False]


@pytest.mark.parametrize("dest", ["img2img", "inpaint"])
def test_send_to_carries_enabled_delay_and_auto_settings(sd1, dest):
    h, *_ = sd1
    assert h.sent_script_args(AUTO_ARGS, TITLE, dest) == AUTO_ARGS
    assert h.sent_script_args(PERCENT_ARGS, TITLE, dest) == PERCENT_ARGS


def test_send_to_carries_the_off_state_too(sd1):
    h, *_ = sd1
    off = [False, 3, False, 0.5, 0, 3, "steps", False]
    held = [True, 7, True, 0.2, 2, 9, "%", True]
    # img2img held other values; its analysis checkbox keeps its own (not in the infotext)
    assert h.sent_script_args(off, TITLE, dest_args=held) == off[:7] + [True]


def test_send_to_pairs_every_field_with_its_twin(sd1):
    h, *_ = sd1
    prompt = h.current().txt2img.fields["prompt"]
    cfg = h.current().txt2img.fields["cfg_scale"]
    sent = h.send_to("img2img", values={prompt: "a cat", cfg: 12.0})
    img2img = h.current().img2img.fields
    assert sent[img2img["prompt"]] == "a cat"  # a built-in field travels
    assert img2img["cfg_scale"] not in sent  # a field not listed stays
    *panel, analysis = h.components(TITLE, "img2img")
    assert [sent[c] for c in panel] == [c.value for c in h.components(TITLE, "txt2img")][:7]
    assert analysis not in sent


def test_send_to_from_img2img_and_to_extras_carries_nothing(sd1):
    h, *_ = sd1
    assert h.send_to("img2img", source_tab="img2img") == {}
    assert h.send_to("extras") == {}


def test_paste_field_names_are_the_infotext_readers_of_both_tabs(sd1):
    h, *_ = sd1
    for tab in ("txt2img", "img2img"):
        script = h.script(TITLE, tab)
        readers = [target for _, target in script.infotext_fields]
        assert script.paste_field_names == readers and all(callable(r) for r in readers)
    # the same objects in both tabs: the WebUI matches the destination's fields against the source runner's list
    assert h.script(TITLE, "txt2img").paste_field_names == h.script(TITLE, "img2img").paste_field_names


def test_paste_still_turns_off_and_warns_once(sd1, ext_log):
    h, *_ = sd1
    # a malformed value no other test pastes: warnings are once per process
    text = "a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Negative delay: soon, Seed: 1"
    assert h.pasted_script_args(text, TITLE, "img2img")[:3] == [False, 3, False]
    assert len(ext_log.at(logging.WARNING)) == 1
    plain = "a cat\nNegative prompt: glasses\nSteps: 20, Sampler: Euler, Seed: 1"
    assert h.pasted_script_args(plain, TITLE)[:2] == [False, 3]


def test_api_infotext_unaffected(sd1):
    h, *_ = sd1
    text = (
        "a cat\nNegative prompt: glasses\nSteps: 6, Sampler: Euler, Seed: 3, Negative delay: auto, "
        "Negative delay auto: sensitivity 0.7 steps 1-4 fallback 2"
    )
    out = h.api().text2imgapi({"infotext": text})
    assert "Negative delay: auto" in out["info"] and "sensitivity 0.7 steps 1-4 fallback 2" in out["info"]
