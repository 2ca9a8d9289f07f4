"""Screenshot the txt2img gallery of a running WebUI with an analysis sheet selected (docs/sheet_gallery.png).

    $FIXTURE/venv/bin/python webui_tier/tools/screenshot_gallery.py --url http://127.0.0.1:7861 --out docs/sheet_gallery.png

Needs playwright's Python package and a system Chromium (``/usr/bin/chromium``; ``apt-get install chromium``) and a
WebUI with this extension installed. On the txt2img tab it types a prompt and a negative prompt, sets 8 steps and
64x64, opens the "Negative Prompt Delay" panel, ticks Enabled and "Show when the negative prompt acts", presses
Generate, waits for two gallery items (the image, then its sheet), clicks the sheet and saves the gallery column.
Prints what it saw; exits 1 when the gallery did not show the sheet.
"""  # noqa: E501 (the command line above)

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_panel import arguments, open_ui  # noqa: E402

TAB = "txt2img"
PANEL = f"#negative_delay_{TAB}"


def set_number(page, elem_id: str, value: int) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def main() -> int:
    args = arguments(__doc__.splitlines()[0], "docs/sheet_gallery.png", 600)

    from playwright.sync_api import sync_playwright

    report: dict = {}
    with sync_playwright() as pw:
        browser, page = open_ui(pw, args, {"width": 1500, "height": 1100})
        page.locator(PANEL).wait_for(state="visible")
        page.set_default_timeout(60_000)
        page.locator(f"#{TAB}_prompt textarea").fill("a cat")
        page.locator(f"#{TAB}_neg_prompt textarea").fill("glasses, hat")
        set_number(page, f"{TAB}_steps", 8)
        set_number(page, f"{TAB}_width", 64)
        set_number(page, f"{TAB}_height", 64)
        enabled = page.locator(f"{PANEL}_enabled input")
        if not enabled.is_visible():
            page.locator(PANEL).locator(".label-wrap").first.click()
            enabled.wait_for(state="visible")
        enabled.check()
        page.locator(f"{PANEL}_analysis input").check()
        page.locator(f"#{TAB}_generate").click()
        gallery = page.locator(f"#{TAB}_gallery")
        thumbs = gallery.locator(".thumbnail-item")
        page.wait_for_function(
            "sel => document.querySelectorAll(sel).length >= 2",
            arg=f"#{TAB}_gallery .thumbnail-item",
            timeout=args.timeout * 1000,
        )
        report["gallery_thumbnails"] = thumbs.count()  # gradio 3 draws each item twice (grid and preview strip)
        thumbs.nth(1).click()  # the second item: the sheet
        page.wait_for_timeout(1500)
        page.mouse.move(0, 0)
        # gradio 3 renders two elements with this id (the block and its inner HTML)
        report["info"] = page.locator(f"#html_info_{TAB}").last.inner_text()[-300:]
        column = page.locator(f"#{TAB}_results")
        column.screenshot(path=args.out)
        browser.close()
    report["ok"] = report["gallery_thumbnails"] in (2, 4) and "Negative delay sheet" in report["info"]
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
