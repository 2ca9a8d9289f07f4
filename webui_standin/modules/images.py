"""Models the part of modules/images.py (v1.10.1) an extension calls to save a picture: ``save_image``.

The real function builds a file name from the filename pattern settings, optionally a sub-folder, writes the
generation parameters into the PNG, and returns (full path, text-file path). Here: ``<path>/<basename>-<n>.<ext>``
with ``n`` counting the files already in the folder, the parameters in the PNG's ``parameters`` text chunk.
"""

from __future__ import annotations

import os


def save_image(
    image,
    path: str,
    basename: str,
    seed=None,
    prompt=None,
    extension: str = "png",
    info: str | None = None,
    short_filename: bool = False,
    no_prompt: bool = False,
    grid: bool = False,
    pnginfo_section_name: str = "parameters",
    p=None,
    existing_info=None,
    forced_filename=None,
    suffix: str = "",
    save_to_dirs=None,
) -> tuple[str, None]:
    from PIL import PngImagePlugin

    os.makedirs(path, exist_ok=True)
    number = len(os.listdir(path))
    full = os.path.join(path, f"{basename}-{number:05d}{suffix}.{extension}")
    meta = PngImagePlugin.PngInfo()
    if info is not None:
        meta.add_text(pnginfo_section_name, info)
    image.save(full, pnginfo=meta if extension == "png" else None)
    return full, None
