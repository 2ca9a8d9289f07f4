"""Validation of user values from every source: clear messages, logged once, documented fallbacks."""

import logging

import pytest

from lib_negative_delay import MAX_DELAY
from lib_negative_delay.settings import OnceLog, log, parse_delay, parse_enabled


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def records():
    handler = Records()
    log.addHandler(handler)
    yield handler.messages
    log.removeHandler(handler)


@pytest.mark.parametrize(
    "value,expected",
    [(5, 5), ("7", 7), (" 3 ", 3), ("4.0", 4), (0, 0), ("-3", 0), (-1, 0), ("1e9", MAX_DELAY), (151, MAX_DELAY)],
)
def test_parse_delay_values(value, expected):
    assert parse_delay(value, "test", OnceLog()) == expected


@pytest.mark.parametrize("value", ["abc", "", "5.5", None, True, "nan", "inf", [3]])
def test_parse_delay_rejects(value, records):
    assert parse_delay(value, "test", OnceLog()) is None
    assert len(records) == 1 and "test" in records[0]


def test_warnings_are_logged_once(records):
    once = OnceLog()
    for _ in range(5):
        parse_delay("abc", "pasted infotext", once)
        parse_delay(-4, "pasted infotext", once)
    assert len(records) == 2


@pytest.mark.parametrize(
    "value,expected", [(True, True), (False, False), ("True", True), ("false", False), (1, True), (0, False)]
)
def test_parse_enabled(value, expected):
    assert parse_enabled(value, "test", OnceLog()) is expected


def test_parse_enabled_rejects(records):
    assert parse_enabled("maybe", "test", OnceLog()) is None
    assert records and "maybe" in records[0]
