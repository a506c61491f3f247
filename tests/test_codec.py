"""codec.check_json: its fast path accepts exactly what the full walk accepts,
and refusals still name the bad item's path."""

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adk_lite import codec


class Color(enum.IntEnum):
    RED = 1


class MyDict(dict):
    pass


def _full_walk_accepts(value):
    try:
        codec._explain(value, "v", codec.MAX_DEPTH)
    except (TypeError, ValueError):
        return False
    return True


leaves = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64), st.just(Color.RED), st.binary(max_size=3),
    st.tuples(st.integers(0, 3)), st.just(1.5j), st.just("lone \ud800 surrogate"), st.just("é\udfff"),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3), st.just("\udc80")), inner, max_size=4),
        st.dictionaries(st.text(max_size=3), inner, max_size=3).map(MyDict),
    ),
    max_leaves=12,
)


@given(values)
def test_check_json_agrees_with_the_full_walk(value):
    if _full_walk_accepts(value):
        codec.check_json(value, "v")
    else:
        with pytest.raises((TypeError, ValueError)):
            codec.check_json(value, "v")
    if codec._plain(value, codec.MAX_DEPTH):
        assert _full_walk_accepts(value)


@pytest.mark.parametrize("bad, message", [
    ({"a": [1, {"b": (1, 2)}]}, "state['a'][1]['b']: tuple is not a JSON type"),
    ({"a": [math.nan]}, "state['a'][0]: nan is not a finite number"),
    ({"a": {"b": 2**63}}, "state['a']['b']: int 9223372036854775808 is outside"),
    ({"a": {1: "x"}}, "state['a']: dict key 1 is int"),
    ([Color.RED], "state[0]: Color is not a JSON type"),
])
def test_refusals_name_the_path_of_the_bad_item(bad, message):
    with pytest.raises((TypeError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        codec.check_json(bad, "state")


def test_dict_and_list_subclasses_are_still_accepted():
    class MyList(list):
        pass

    codec.check_json(MyDict(a=MyList([1, 2.5, None, "x", True])), "state")
    assert not codec._plain(MyDict(), codec.MAX_DEPTH)  # the full walk decides for subclasses


def _nested(depth, make):
    value = 0
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize("make", [lambda v: [v], lambda v: {"k": v}], ids=["lists", "dicts"])
def test_nesting_up_to_the_limit_passes_and_deeper_is_a_value_error(make):
    codec.check_json(_nested(codec.MAX_DEPTH, make), "state")
    for depth in (codec.MAX_DEPTH + 1, 256, 10_000):
        with pytest.raises(ValueError, match=f"nested more than {codec.MAX_DEPTH} lists and dicts deep"):
            codec.check_json(_nested(depth, make), "state")


@pytest.mark.parametrize("bad", ["\ud800", ["ok", "x\udfffy"], {"\udc00": 1}, {"a": {"é\ud800": "v"}}])
def test_lone_surrogates_are_a_value_error(bad):
    with pytest.raises(ValueError, match="lone surrogate"):
        codec.check_json(bad, "state")
