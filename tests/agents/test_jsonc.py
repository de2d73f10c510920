"""The JSONC editor: values read right, and edits leave everything else byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modal_offload.install import jsonc

keys = st.text(alphabet="abcXY._-é ", min_size=1, max_size=6)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-99, 99),
                    st.text(alphabet='ab "\\/\n', max_size=5))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=8)


@st.composite
def jsonc_text(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A JSONC rendering of a random object with comments and trailing commas sprinkled in."""
    data = draw(st.dictionaries(keys, values, max_size=4))
    junk = st.sampled_from(["", " ", "\n  ", " // note\n  ", " /* c */ ", "\n\t"])

    def render(v: Any, depth: int) -> str:
        if isinstance(v, dict):
            parts = [f"{draw(junk)}{json.dumps(k)}:{draw(junk)}{render(x, depth + 1)}"
                     for k, x in v.items()]
            comma: bool = draw(st.booleans())
            trail = "," if parts and comma else ""
            return "{" + ",".join(parts) + trail + draw(junk) + "}"
        if isinstance(v, list):
            parts = [draw(junk) + render(x, depth + 1) for x in v]
            comma = draw(st.booleans())
            trail = "," if parts and comma else ""
            return "[" + ",".join(parts) + trail + draw(junk) + "]"
        return json.dumps(v)

    return draw(junk) + render(data, 0) + "\n", data


@settings(max_examples=150, deadline=None)
@given(case=jsonc_text(), key=keys, value=values)
def test_set_then_remove_restores_bytes(case: tuple[str, dict[str, Any]], key: str,
                                        value: Any) -> None:
    text, data = case
    assert jsonc.loads(text) == data
    path = ("zz-ours", key)
    edited = jsonc.set_value(text, path, value)
    assert jsonc.loads(edited) == {**data, "zz-ours": {key: value}}
    restored = jsonc.remove_key(edited, ("zz-ours",))
    assert jsonc.loads(restored) == data
    if data:  # a non-empty object: the cut is the exact inverse of the splice
        assert restored == text


@settings(max_examples=100, deadline=None)
@given(case=jsonc_text(), item=values)
def test_append_then_remove_item(case: tuple[str, dict[str, Any]], item: Any) -> None:
    text, data = case
    lists = [k for k, v in data.items() if isinstance(v, list)]
    if not lists:
        return
    key = lists[0]
    edited = jsonc.append_item(text, (key,), item)
    assert jsonc.loads(edited)[key] == [*data[key], item]
    restored = jsonc.remove_item(edited, (key,), len(data[key]))
    assert jsonc.loads(restored) == data
    if data[key]:
        assert restored == text


@pytest.mark.parametrize("bad", ["{", '{"a": }', '{"a": 1} x', "{'a': 1}", '{"a" 1}',
                                 "/* open", '{"a": tru}'])
def test_invalid_text_is_refused(bad: str) -> None:
    with pytest.raises(jsonc.JsoncError):
        jsonc.loads(bad)


def test_replacing_a_value_keeps_comments_around_it() -> None:
    text = '{\n  // keep\n  "a": [1, 2], /* and this */\n  "b": 2,\n}\n'
    assert jsonc.set_value(text, ("a",), True) == \
        '{\n  // keep\n  "a": true, /* and this */\n  "b": 2,\n}\n'
