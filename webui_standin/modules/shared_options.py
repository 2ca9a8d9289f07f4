"""Stand-in for modules/shared_options.py: the option templates live in modules/shared.py here."""

from modules.options import OptionHTML, OptionInfo, options_section  # noqa: F401
from modules.shared import _default_options

options_templates = _default_options()
"""mirrors shared_options.options_templates (the subset the stand-in defines)."""
