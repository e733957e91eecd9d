"""The filter parser never fails with anything but FilterSyntaxError, at a valid position."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trainforge.errors import FilterSyntaxError
from trainforge.tracking import parse_filter
from trainforge.tracking._filter import Condition, compile_filter

_PIECES = st.sampled_from(
    [
        "metrics.val_loss",
        "params.optim.lr",
        "tags.baseline",
        "attributes.status",
        "and",
        "or",
        "not",
        "(",
        ")",
        "<",
        ">=",
        "=",
        "!=",
        "0.4",
        "-1e-4",
        "'completed'",
        '"x"',
        "'open",
        "$",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=12).map(" ".join)))
def test_any_text_parses_or_points_inside_it(text):
    try:
        parse_filter(text)
    except FilterSyntaxError as err:
        assert 0 <= err.position <= len(text)
        assert text in str(err)
    else:
        compile_filter(text)  # anything that parses also compiles to SQL


def test_precedence_and_binds_tighter_than_or():
    tree = parse_filter("tags.a or tags.b and not tags.c")
    assert tree[0] == "or"
    assert isinstance(tree[1], Condition)
    assert tree[2][0] == "and"
    assert tree[2][2] == ("not", Condition("tags", "c", None, None, 25))
