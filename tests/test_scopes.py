"""Scope rules: a delta split by prefix, stored rows, the merged view."""

from __future__ import annotations

import pytest

from adk_lite import scopes


def test_split_sorts_keys_by_prefix_and_drops_the_prefix():
    parts = scopes.split({"app:a": 1, "user:u": 2, "s": 3, "temp:t": 4, "user:app:x": 5})
    assert parts.app == {"a": 1} and parts.user == {"u": 2, "app:x": 5} and parts.session == {"s": 3}
    assert parts.temp == {"temp:t": 4}
    assert sorted(parts.persisted()) == [("app", "a", 1), ("session", "s", 3), ("user", "app:x", 5), ("user", "u", 2)]


def test_stored_rows_are_json_and_leave_temp_out():
    assert sorted(scopes.stored_rows({"app:a": [1, None], "k": {"x": "é"}, "temp:t": 1})) == [
        ("app", "a", "[1,null]"), ("session", "k", '{"x":"é"}')]


def test_merge_puts_the_prefixes_back():
    rows = [("app", "a", "1"), ("user", "u", '"en"'), ("session", "s", "null")]
    assert scopes.merge(rows) == {"app:a": 1, "user:u": "en", "s": None}
    assert scopes.unscoped(rows[:1]) == {"a": 1}


@pytest.mark.parametrize("delta, kind, message", [
    ([("k", 1)], TypeError, "state must be a dict"),
    ({1: 1}, TypeError, "key 1 is int"),
    ({"": 1}, ValueError, "an empty key"),
    ({"temp:": 1}, ValueError, "prefix 'temp:' with an empty name"),
    ({"k\x00": 1}, ValueError, "NUL"),
    ({"\ud800": 1}, ValueError, "lone surrogate"),
    ({"k": float("nan")}, ValueError, "not a finite number"),
])
def test_check_delta_refuses_with_the_argument_named(delta, kind, message):
    with pytest.raises(kind, match=message):
        scopes.check_delta(delta, "state")


def test_temp_values_are_not_checked_as_json():
    """temp: keys are never stored, so any object may ride on them (as in ADK)."""
    marker = object()
    assert scopes.check_delta({"temp:obj": marker}, "state") == {"temp:obj": marker}
    assert scopes.without_temp({"temp:obj": marker, "k": 1}) == {"k": 1}
