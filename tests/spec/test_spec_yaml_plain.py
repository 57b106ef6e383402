"""The line-by-line fast path gives exactly what the event builder gives, or steps aside."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from reconciler.spec import yaml_plain
from reconciler.spec.source import DEFAULT_LIMITS, Limits

from support.spec import site

SIMPLE = [
    site("x", "x.example.com").replace("production: {version: 1}", "production:\n    version: 1"),
    "a: 1\nb: -5\nc: 1.5\nd: .inf\ne: -.inf\nf: .nan\ng: true\nh: False\ni: null\nj: ~\n"
    "k: 0o17\nl: 0x1f\nm: yes\nn: 2024-01-01\no: '+351'\np: \"x y\"\nq: a:b\nr: -x\ns: a,b\n",
    "a:\nb:\n  c:\n  d: 1\n",
    "a:\n- 1\n- x\n- y: 2\n  z: 3\n- w: 4\nb: 5\n",
    "a:\n  - 1\n  - y: 2\n    z:\n      - q\n  - 3\nb:\n",
    "# comment\n\napiVersion: v\n  # indented comment\nkind: X\n\n",
    "a:    spaced\nb: ''\nc: \"\"\n_x-y: 1\nA9: /path\n",
    "a:\n  b:\n    c:\n      d: 1\n  e: 2\nf:\n  - g: 1\n    h:\n    - 2\n    i: 3\n",
    "a: /p/x\nb: x|y\nc: a:b:c\nd: Null\ne: TRUE\nf: a  b\ng: http://a.b/c?d=e&f={g}\n",
    "a: 00\nb: +1\nc: 1e5\nd: 1.\ne: .5\n",
]

NOT_SIMPLE = [
    site("x", "x.example.com"),  # flow style: {version: 1}
    "a: 1\n  b: 2\n",  # an error: the full parser words it
    "a: x\n  more\n",  # a multi-line plain scalar
    "a:\n  b: 1\n c: 2\n",
    "- a\n- b\n",  # a list at the top
    "a: 'it''s'\n",
    'a: "q\\n"\n',
    "a: b # c\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  x\n",
    "a: {b: 1}\n",
    "a: 1\na: 2\n",  # a repeated key is an issue
    "true: 1\n",
    "a: 1\n---\nb: 2\n",
    "---\na: 1\n",
    "a:\n-\n  b: 1\n",
    "a:\n- - 1\n",
    "a: trailing \n",
    "a: x:\n",
    "a: x: y\n",
    "a:\n  b: 1\n- c\n",
    "a: caf\u00e9\n",  # non-ASCII text
    "a:\tb\n",
    "a: 1\r\n",
    "# only a comment\n",
]


def _by_events(text: str) -> tuple[Any, int, int, dict[str, int]]:
    parser = yaml_plain.PARSER(text)
    try:
        documents = []
        while True:
            event = parser.get_event()
            if isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, yaml.DocumentStartEvent):
                value, mark, positions, issues = yaml_plain.build_document(parser, DEFAULT_LIMITS)
                assert not issues
                documents.append((value, mark.line + 1, mark.column + 1, positions))
    finally:
        parser.dispose()
    assert len(documents) == 1
    return documents[0]


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("text", SIMPLE)
def test_the_fast_path_gives_the_event_builders_values_and_positions(text: str) -> None:
    fast = yaml_plain.build_simple(text, DEFAULT_LIMITS)
    assert fast is not None
    value, line, column, positions = _by_events(text)
    assert _same(fast[0], value)
    assert (fast[1], fast[2]) == (line, column)
    assert fast[3] == positions


@pytest.mark.parametrize("text", NOT_SIMPLE)
def test_the_fast_path_steps_aside_outside_its_subset(text: str) -> None:
    assert yaml_plain.build_simple(text, DEFAULT_LIMITS) is None


def test_the_fast_path_leaves_the_limits_to_the_full_parser() -> None:
    deep = "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(5)) + "          v: 1\n"
    assert yaml_plain.build_simple(deep, DEFAULT_LIMITS) is not None
    assert yaml_plain.build_simple(deep, Limits(max_depth=3)) is None
    many = "".join(f"k{index}: {index}\n" for index in range(50))
    assert yaml_plain.build_simple(many, Limits(max_values_per_document=50)) is None
