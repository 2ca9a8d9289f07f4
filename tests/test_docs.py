"""The README documents what the code offers, and cannot silently lose it.

Every API argument label, X/Y/Z axis, infotext key and Settings option the extension registers must appear in the
README; the reference sections stand in the user's order; the README's API examples run against the stand-in's
API and return the infotext they claim; every relative link and image in README.md and docs/ resolves.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata

import pytest
from conftest import ROOT, TITLE

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

SECTIONS = [
    "Install",
    "Quick start",
    "The panel",
    "img2img, inpainting and hires fix",
    "Samplers and schedulers",
    "Auto-detect",
    'Infotext, PNG info, paste and "Send to"',
    "X/Y/Z plot",
    "HTTP API",
    "Settings",
    "Supported WebUIs",
    "FAQ",
    "Results in brief",
    "Limitations",
    "Development",
    "License",
]
"""The README's sections, in the order a WebUI user needs them (issue 20)."""


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The body of ``## title`` up to the next ``## `` heading ('' when absent)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return match.group(1) if match else ""


def test_sections_stand_in_the_users_order():
    titles = re.findall(r"^## (.+)$", readme(), re.M)
    assert titles == SECTIONS


def test_readme_is_a_ten_minute_read():
    """The developers' guide's limit: a manual under 24 KB, detail in docs/."""
    assert len(README.read_bytes()) <= 24 * 1024
    assert all("{{" not in line for line in readme().splitlines())  # no unfilled placeholder


@pytest.mark.parametrize("title", ["samplers and schedulers", "img2img", "HTTP API", "X/Y/Z plot", "Infotext"])
def test_reference_sections_are_not_empty(title):
    match = next(t for t in SECTIONS if t.lower().startswith(title.lower()))
    assert len(section(readme(), match)) > 400


def test_every_sampler_of_the_webui_is_in_the_sampler_table():
    from webui_tier.scenarios import SAMPLERS, SCHEDULE_TYPES

    body = section(readme(), "Samplers and schedulers")
    assert [s for s in SAMPLERS if s not in body] == []
    assert [s for s in SCHEDULE_TYPES if s not in body] == []


def test_every_api_argument_label_is_documented(sd1):
    h, *_ = sd1
    info = next(i for i in h.api().get_script_info() if i.name == TITLE.lower())
    labels = [a.label for a in info.args]
    assert len(labels) == 8
    assert [label for label in labels if label not in readme()] == []


def test_every_xyz_axis_is_documented(sd1):
    h, *_ = sd1
    axes = [o.label for o in h.xyz().axis_options if o.label.startswith("[Negative Delay]")]
    body = section(readme(), "X/Y/Z plot")
    assert len(axes) == 5 and [a for a in axes if f"`{a}`" not in body] == []


def test_every_infotext_key_is_documented():
    from lib_negative_delay import INFOTEXT_KEY
    from lib_negative_delay.webui import generation, infotext

    keys = {INFOTEXT_KEY, generation.AUTO_KEY, generation.STEPS_KEY, infotext.AUTO_KEY}
    body = section(readme(), 'Infotext, PNG info, paste and "Send to"')
    assert [k for k in keys if f"`{k}`" not in body] == []


def test_every_settings_option_is_documented(sd1):
    from modules import shared

    from lib_negative_delay.webui import options

    ours = [v.label for v in shared.opts.data_labels.values() if getattr(v, "section", None) == options.SECTION]
    assert len(ours) == 3
    assert [label for label in ours if label not in section(readme(), "Settings")] == []


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_curl_example_runs_and_returns_the_infotext_it_claims(sd1):
    h, *_ = sd1
    body = section(readme(), "HTTP API")
    (curl,) = [b for b in _code_blocks(body, "bash") if "curl" in b]
    assert "/sdapi/v1/txt2img" in curl
    payload = json.loads(re.search(r"-d '(.*)'", curl, re.S).group(1))
    claimed = re.search(r"`(Negative delay: [^`]+)`", body.split("```python")[0].split(curl)[1]).group(1)
    out = h.api().text2imgapi(payload)
    assert claimed in out["info"]


def test_the_webuiapi_example_runs_and_returns_the_infotext_it_claims(sd1):
    h, *_ = sd1
    (code,) = _code_blocks(section(readme(), "HTTP API"), "python")
    call = next(
        n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "txt2img"
    )
    payload = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    claimed = re.search(r"# … (Negative delay: [^ ]+) …", code).group(1)
    out = h.api().text2imgapi(payload)
    assert claimed in out["info"]


def test_the_argument_order_in_the_readme_is_the_panels(sd1):
    h, *_ = sd1
    body = section(readme(), "HTTP API")
    documented = re.findall(r"`(enabled|delay|auto|sensitivity|earliest|latest|unit|analysis)`", body)
    assert documented[:8] == ["enabled", "delay", "auto", "sensitivity", "earliest", "latest", "unit", "analysis"]
    ids = [c.elem_id.rsplit("txt2img_", 1)[1] for c in h.components(TITLE, "txt2img")]
    assert ids == ["enabled", "delay", "auto", "sensitivity", "auto_min", "auto_max", "unit", "analysis"]


# --- links and images -----------------------------------------------------------------------------------------


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _links(path):
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_and_images_resolve(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(target)
            continue
        if fragment and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.M)
            if fragment not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert broken == []


def test_readme_pictures_exist_and_are_pngs():
    images = [t for t in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme())]
    assert {"docs/demo.png", "docs/panel.png", "docs/xyz_grid.png"} <= set(images)
    for image in images:
        assert (ROOT / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_changelog_starts_at_this_version_and_the_settings_section_names_it():
    from lib_negative_delay import VERSION
    from lib_negative_delay.webui import options

    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert versions[0] == VERSION
    assert versions == sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")), reverse=True)
    assert options.SECTION[1].endswith(VERSION)
    assert f"extension v{VERSION}" in readme()
