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
        codec._explain(value, "v")
    except (TypeError, ValueError):
        return False
    return True


leaves = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64), st.just(Color.RED), st.binary(max_size=3),
    st.tuples(st.integers(0, 3)), st.just(1.5j),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=4),
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
    if codec._plain(value):
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
    assert not codec._plain(MyDict())  # the full walk decides for subclasses
