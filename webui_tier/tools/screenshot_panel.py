"""Screenshot the extension's txt2img panel in a running WebUI, set to "20 % of 20 steps" (docs/panel.png).

    /root/real-webui-fixture/venv/bin/python webui_tier/tools/screenshot_panel.py --url http://127.0.0.1:7861 --out docs/panel.png

Needs playwright's Python package and a system Chromium (``/usr/bin/chromium``; never ``playwright install``) and a
WebUI with the extension installed (``bash webui_tier/install.sh WEBUI_DIR``, then start it). On the txt2img tab it
opens the "Negative Prompt Delay" accordion, ticks Enabled, clicks the "%" unit (the page converts the delay at the
tab's Sampling steps: 4 steps of 20 become 20 %), sets the delay to 20 if it is not, waits for the title poll and
saves the accordion with a small margin. It prints what it saw (delay before and after the click, the title, whether
the title is highlighted, whether Unit sits beside Delay) and exits 1 when the panel is not as expected; the PNG is
written either way.
"""  # noqa: E501 (the command line above)

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

TAB = "txt2img"
PANEL = f"#negative_delay_{TAB}"
DELAY = 20
EXPECTED_TITLE = f"Negative Prompt Delay: from {DELAY} % — step 4 of 20"
MARGIN = 12


def delay_value(page) -> str:
    return page.locator(f"{PANEL}_delay input[type=number]").input_value()


def compact_png(png: bytes, limit: int = 200_000) -> bytes:
    """The screenshot as is, or palette-quantised when it is over ``limit`` bytes (needs Pillow)."""
    if len(png) <= limit:
        return png
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def arguments(description: str, out: str, timeout: float) -> argparse.Namespace:
    """The command line both screenshot tools take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", default="http://127.0.0.1:7861")
    parser.add_argument("--out", default=out)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds to wait for the UI (and generation)")
    return parser.parse_args()


def open_ui(pw, args: argparse.Namespace, viewport: dict):  # noqa: ANN001, ANN201 (playwright objects)
    """Headless Chromium on the WebUI, waiting until its txt2img Sampling steps exist; returns (browser, page)."""
    browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"], headless=True)
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(args.timeout * 1000)
    page.goto(args.url, wait_until="domcontentloaded")
    # the WebUI is up when its txt2img Sampling steps and our panel exist; our JS runs from onUiLoaded
    page.wait_for_selector(f"#{TAB}_steps input[type=number]", state="attached")
    return browser, page


def main() -> int:
    args = arguments(__doc__.splitlines()[0], "docs/panel.png", 300)

    from playwright.sync_api import sync_playwright

    report: dict = {}
    with sync_playwright() as pw:
        browser, page = open_ui(pw, args, {"width": 1400, "height": 1000})
        panel = page.locator(PANEL)
        panel.wait_for(state="visible")
        page.locator("#tabs").get_by_role("button", name="txt2img", exact=True).first.click()
        page.set_default_timeout(30_000)

        enabled = page.locator(f"{PANEL}_enabled input")
        if not enabled.is_visible():  # closed accordion: open it
            panel.locator(".label-wrap").first.click()
            enabled.wait_for(state="visible")
        report["sampling_steps"] = page.locator(f"#{TAB}_steps input[type=number]").input_value()
        enabled.check()
        report["delay_before_click"] = delay_value(page)
        page.locator(f"{PANEL}_unit label").filter(has_text="%").click()
        page.wait_for_timeout(500)
        report["delay_after_click"] = delay_value(page)
        report["unit"] = page.locator(f"{PANEL}_unit input[type=radio]:checked").input_value()
        if float(report["delay_after_click"] or 0) != DELAY:
            number = page.locator(f"{PANEL}_delay input[type=number]")
            number.fill(str(DELAY))
            number.press("Enter")
            report["delay_set_to"] = delay_value(page)
        page.wait_for_timeout(1500)  # the title poll (500 ms) and gradio's label update
        page.mouse.move(0, 0)  # no hover styles or tooltips in the picture

        report["title"] = panel.locator(".label-wrap span").first.inner_text()
        report["title_highlighted"] = "negative-delay-active" in (panel.get_attribute("class") or "")
        report["delay_label"] = page.locator(f"{PANEL}_delay").locator("span").first.inner_text()
        report["delay_max"] = page.locator(f"{PANEL}_delay input[type=number]").get_attribute("max")
        boxes = {n: page.locator(f"{PANEL}_{n}").bounding_box() for n in ("enabled", "delay", "unit")}
        report["boxes"] = boxes
        d, u = boxes["delay"], boxes["unit"]
        same_row = d and u and u["y"] < d["y"] + d["height"] and d["y"] < u["y"] + u["height"]
        report["unit_beside_delay"] = bool(same_row and u["x"] >= d["x"] + d["width"] - 1)

        box = panel.bounding_box()
        clip = {
            "x": max(0.0, box["x"] - MARGIN),
            "y": max(0.0, box["y"] - MARGIN),
            "width": box["width"] + 2 * MARGIN,
            "height": box["height"] + 2 * MARGIN,
        }
        png = page.screenshot(clip=clip, full_page=True)
        browser.close()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = compact_png(png)
    out.write_bytes(data)
    report["png"] = {"path": str(out), "bytes": len(data), "clip": clip}
    problems = []
    if report["title"] != EXPECTED_TITLE:
        problems.append(f"title {report['title']!r}, expected {EXPECTED_TITLE!r}")
    if report["unit"] != "%":
        problems.append(f"unit {report['unit']!r} after clicking %")
    if not report["title_highlighted"]:
        problems.append("the title is not highlighted while Enabled is ticked")
    if not report["unit_beside_delay"]:
        problems.append("the Unit radio does not sit beside the Delay slider")
    steps = max(1, int(float(report["sampling_steps"] or 1)))
    converted = min(100, round(float(report["delay_before_click"] or 0) * 100 / steps))
    if float(report["delay_after_click"] or 0) != converted:
        problems.append(
            f"clicking % turned {report['delay_before_click']} steps of {steps} into {report['delay_after_click']}, "
            f"not {converted}"
        )
    report["problems"] = problems
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
