"""The one parser for ids and page numbers (app/services/inputs.py) and the ``<pk:>`` route converter."""

from __future__ import annotations

import re

import pytest

from app.services.inputs import MAX_ID, IdConverter, parse_id, parse_int, parse_page


@pytest.mark.parametrize("value, expected", [
    ("1", 1), ("42", 42), (" 42 ", 42), ("007", 7), (str(MAX_ID), MAX_ID), (17, 17),
])
def test_parse_id_accepts_decimal_ids(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "   ", "0", "-1", "+1", "4.0", "1e9", "0x1f", "1_0", "\u0661\u0662", "\uff11", "1\x00", "abc",
    str(MAX_ID + 1), str(2**63), "99999999999999999999", "9" * 5000, 0, -5, 2**63, True, 4.0, [1], b"1",
])
def test_parse_id_refuses_anything_that_cannot_name_a_row(value):
    assert parse_id(value) is None


def test_parse_int_bounds_and_sign():
    assert parse_int("-3") == -3
    assert parse_int("-3", minimum=0) is None
    assert parse_int("12", maximum=10) is None
    assert parse_int("-") is None


def test_parse_page_counts_from_first():
    assert parse_page("0") == 0
    assert parse_page("0", first=1) is None
    assert parse_page("-1") is None
    assert parse_page(str(MAX_ID + 1)) is None


@pytest.mark.parametrize("text, matches", [
    ("1", True), ("2147483647", True), ("2147483648", False), ("0", False), ("007", False),
    ("-1", False), ("\u0661\u0662", False), ("1\u0662", False), ("99999999999999999999", False),
])
def test_route_converter_matches_only_canonical_ids(text, matches):
    assert bool(re.fullmatch(IdConverter.regex, text)) is matches
