"""Argument checks: types, lengths, ranges; each error names the argument."""

from __future__ import annotations

import pytest

from adk_lite import MAX_COUNT, MAX_ID_LENGTH, MAX_TIMESTAMP, MIN_TIMESTAMP, validate


@pytest.mark.parametrize("value, kind, message", [
    (None, TypeError, "app_name must be a str, not NoneType"),
    ("  ", ValueError, "app_name must not be empty or blank"),
    ("x" * (MAX_ID_LENGTH + 1), ValueError, f"the limit is {MAX_ID_LENGTH}"),
    ("a\x00", ValueError, "NUL"),
    ("a\udfff", ValueError, "lone surrogate"),
])
def test_name(value, kind, message):
    with pytest.raises(kind, match=message):
        validate.name(value, "app_name")


def test_session_id_is_stripped_and_blank_generates_only_when_asked():
    assert validate.session_id("  s1 ") == "s1"
    assert len(validate.session_id(None, generate=True)) == 36
    assert len(validate.session_id("   ", generate=True)) == 36
    with pytest.raises(ValueError, match="session_id must not be empty"):
        validate.session_id("   ")


@pytest.mark.parametrize("value, ok", [
    (0, True), (MAX_COUNT, True), (MAX_COUNT + 1, False), (-1, False), (10**400, False), (True, None), (1.0, None),
])
def test_count_bounds(value, ok):
    if ok:
        assert validate.count(value, "limit", 0) == value
    else:
        with pytest.raises(ValueError if ok is False else TypeError, match="limit"):
            validate.count(value, "limit", 0)


@pytest.mark.parametrize("value, ok", [
    (0, True), (1.7e9, True), (MIN_TIMESTAMP, True), (MAX_TIMESTAMP, True), (MAX_TIMESTAMP + 1, False),
    (MIN_TIMESTAMP - 1, False), (2**63, False), (10**400, False), (float("nan"), False), (float("-inf"), False),
])
def test_timestamp_range_is_what_datetime_can_show(value, ok):
    if ok:
        assert validate.timestamp(value, "after_timestamp") == float(value)
    else:
        with pytest.raises(ValueError, match="after_timestamp must be finite epoch seconds"):
            validate.timestamp(value, "after_timestamp")


def test_is_id_text_agrees_with_the_checks():
    for value in ("ok", "x" * MAX_ID_LENGTH, "é🦜"):
        assert validate.is_id_text(value)
        validate.event_text(value, "id")
    for value in ("x" * (MAX_ID_LENGTH + 1), "a\x00", "\ud800", 5, None):
        assert not validate.is_id_text(value)
        with pytest.raises((TypeError, ValueError)):
            validate.event_text(value, "id")
