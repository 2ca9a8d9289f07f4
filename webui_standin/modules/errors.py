"""Stand-in for modules/errors.py."""

from __future__ import annotations

import sys
import traceback

recorded: list[str] = []
"""Every message passed to report()/display() (stand-in only, lets tests assert that errors were reported)."""


def format_exception(e: BaseException, tb) -> str:  # mirrors modules/errors.py format_exception
    return "".join(traceback.format_exception(type(e), e, tb))


def report(message: str, *, exc_info: bool = False) -> None:
    """mirrors modules/errors.py report: prints the message (and the current traceback) to stderr."""
    recorded.append(message)
    lines = message.splitlines()
    if exc_info:
        lines += traceback.format_exc().strip().splitlines()
    print("*** " + "\n    ".join(lines), file=sys.stderr)


def print_error(message: str, *, exc_info: bool = False) -> None:  # mirrors modules/errors.py (old name of report)
    report(message, exc_info=exc_info)


def display(e: Exception, task: str, *, full_traceback: bool = False) -> None:
    """mirrors modules/errors.py display: prints the task and the exception."""
    recorded.append(f"{task}: {e}")
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)


def run(code, task: str) -> None:  # mirrors modules/errors.py run
    try:
        code()
    except Exception as e:
        display(e, task)
