"""core.numbers: numbers typed in any locale, and the ones that are ambiguous."""
from __future__ import annotations

import pytest

from claire.claire_plugin.core.numbers import AmbiguousNumberError, grouped, offset_value, parse_decimal


@pytest.mark.parametrize("text, value", [
    ("-1000", -1000.0), ("-1000,5", -1000.5), ("-1000.5", -1000.5), ("-1 000", -1000.0), ("-1\u202f000", -1000.0),
    ("\u22121000", -1000.0), ("-1.000,5", -1000.5), ("-1,000.5", -1000.5), ("-1.000.000", -1e6), ("0,15", 0.15),
    ("-1000,0", -1000.0), ("1e3", 1000.0), ("+12", 12.0), ("-1,5", -1.5), ("12,3456", 12.3456)])
def test_numbers_as_people_type_them(text, value):
    assert parse_decimal(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-1.000", "-1,000", "1.500", "250,000"])
def test_a_separator_before_three_digits_is_ambiguous(text):
    with pytest.raises(AmbiguousNumberError):
        parse_decimal(text)


@pytest.mark.parametrize("text", ["abc", "1.2.3", "--1", "nan", "inf", "1,2,3", ""])
def test_not_numbers(text):
    with pytest.raises(ValueError):
        parse_decimal(text)


def test_the_offset_names_the_field_and_the_fix():
    assert offset_value("  ", "OPTICAL_OFFSET") is None
    assert offset_value("-1000,0", "OPTICAL_OFFSET") == -1000.0
    with pytest.raises(ValueError, match=r"OPTICAL_OFFSET '-1.000' could be minus one or minus one thousand.*-1000"):
        offset_value("-1.000", "OPTICAL_OFFSET")  # read as -1 it was a silently wrong map
    with pytest.raises(ValueError, match="OPTICAL_OFFSET 'abc' is not a number"):
        offset_value("abc", "OPTICAL_OFFSET")
    # review of QA round 20: '-0.125' and '1.5e3' were refused as "minus one or minus one thousand"
    assert offset_value("-0.125", "x") == -0.125 and offset_value("1.5e3", "x") == 1500.0
    assert offset_value("0,001", "x") == 0.001
    with pytest.raises(ValueError, match="is not a number"):
        offset_value("1e400", "x")


@pytest.mark.parametrize("value, decimals, text", [
    (2007.04, 1, "2\u202f007.0"), (999.94, 1, "999.9"), (1234567, 0, "1\u202f234\u202f567"), (12, 0, "12"),
    (-4500.5, 1, "-4\u202f500.5"), (2 ** 60, 0, "1\u202f152\u202f921\u202f504\u202f606\u202f846\u202f976")])
def test_large_numbers_are_grouped_by_narrow_spaces_never_by_a_comma(value, decimals, text):
    assert grouped(value, decimals) == text
    assert parse_decimal(grouped(value, decimals)) == pytest.approx(float(text.replace("\u202f", "")))
