"""Unit tests of ingest's pure engine: personnummer, pseudonym, phone, due dates."""

from __future__ import annotations

import random
from datetime import date

import pytest

from ingest.engine import (
    InvalidPersonnummer,
    InvalidPhone,
    age_band,
    age_on,
    charge_due_date,
    lease_due_date,
    luhn_ok,
    normalize_phone,
    parse_personnummer,
    pseudonym,
)

TODAY = date(2026, 3, 2)


def with_check(nine: str) -> str:
    """Return `nine` digits (YYMMDDNNN) plus their Luhn check digit."""
    for c in "0123456789":
        if luhn_ok(nine + c):
            return nine + c
    raise AssertionError("unreachable")


def test_luhn_known_numbers() -> None:
    assert luhn_ok("8112289874")
    assert luhn_ok("6709199530")
    assert not luhn_ok("8112289875")


def test_luhn_table_sums_agree_with_the_digit_loop() -> None:
    rng = random.Random(14)
    for _ in range(2000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 14)))
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        assert luhn_ok(digits) is (total % 10 == 0)


def test_luhn_refuses_other_than_ascii_digits() -> None:
    """int() reads Arabic-Indic and other Unicode digits; a personnummer is 0-9 only."""
    assert luhn_ok("8112289874")
    assert not luhn_ok("8112289874".translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    assert not luhn_ok("81122898 4")


@pytest.mark.parametrize(
    "raw", ["811228-9874", "8112289874", "19811228-9874", "198112289874", " 811228-9874 "]
)
def test_all_formats_normalise_to_twelve_digits(raw: str) -> None:
    pnr = parse_personnummer(raw, today=TODAY)
    assert pnr.normalized == "198112289874"
    assert pnr.birth_date == date(1981, 12, 28)
    assert pnr.gender == "male"  # 7 is odd
    assert not pnr.coordination


def test_gender_from_second_to_last_digit() -> None:
    female = with_check("811228986")
    assert parse_personnummer(female, today=TODAY).gender == "female"
    male = with_check("811228987")
    assert parse_personnummer(male, today=TODAY).gender == "male"


def test_plus_separator_means_a_hundred_years_older() -> None:
    pnr = parse_personnummer("811228+9874", today=TODAY)
    assert pnr.birth_date == date(1881, 12, 28)
    assert pnr.normalized == "188112289874"


def test_ten_digit_century_is_the_latest_past_one() -> None:
    born_2020 = with_check("200101123")
    assert parse_personnummer(born_2020, today=TODAY).birth_date == date(2020, 1, 1)
    # 2026-12-01 would lie in the future, so the number means 1926
    assert parse_personnummer(with_check("261201123"), today=TODAY).birth_date == date(1926, 12, 1)


def test_samordningsnummer_day_plus_sixty() -> None:
    pnr = parse_personnummer(with_check("811288987"), today=TODAY)
    assert pnr.coordination
    assert pnr.birth_date == date(1981, 12, 28)
    assert pnr.normalized.startswith("19811288")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("811228-9875", "Luhn"),
        ("811328-9874", "does not exist"),  # month 13
        ("810230-1234", "does not exist"),
        ("81122-89874", "format"),
        ("abcdef-1234", "format"),
        ("19811228+9874", "10-digit"),
        ("", "format"),
        ("1981122898741", "format"),
    ],
)
def test_invalid_personnummer(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPersonnummer, match=reason):
        parse_personnummer(raw, today=TODAY)


def test_future_birth_date_is_rejected() -> None:
    with pytest.raises(InvalidPersonnummer, match="future"):
        parse_personnummer("20" + with_check("270101123"), today=TODAY)


def test_pseudonym_is_keyed_and_stable() -> None:
    a = pseudonym(b"k1", "198112289874")
    assert a == pseudonym(b"k1", "198112289874")
    assert a != pseudonym(b"k2", "198112289874")
    assert len(a) == 64 and "198112289874" not in a


@pytest.mark.parametrize(
    ("birth", "age", "band"),
    [
        (date(2010, 3, 3), 15, "under-18"),
        (date(2008, 3, 2), 18, "18-24"),
        (date(2001, 3, 3), 24, "18-24"),
        (date(2001, 3, 2), 25, "25-29"),
        (date(1990, 1, 1), 36, "30-39"),
        (date(1980, 1, 1), 46, "40-49"),
        (date(1970, 1, 1), 56, "50-64"),
        (date(1961, 3, 2), 65, "65+"),
    ],
)
def test_age_and_band_relative_to_today(birth: date, age: int, band: str) -> None:
    assert age_on(birth, TODAY) == age
    assert age_band(age) == band


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("070-123 45 67", "+46701234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("0046701234567", "+46701234567"),
        ("08-123 456 78", "+46812345678"),
        ("+4915112345678", "+4915112345678"),
    ],
)
def test_phone_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "12345", "+46070123456", "070-ABC", "+4670", "+0123456789"])
def test_bad_phone(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_due_date_from_invoice_lease_or_jb_12_20() -> None:
    assert charge_due_date("2026-03", invoice_due=date(2026, 2, 20), lease_due_day=5) == (
        date(2026, 2, 20),
        "invoice",
    )
    assert charge_due_date("2026-03", invoice_due=None, lease_due_day=5) == (
        date(2026, 3, 5),
        "lease",
    )
    # March 2026 rent: the last working day of February is Friday 27 February
    assert charge_due_date("2026-03", invoice_due=None, lease_due_day=None) == (
        date(2026, 2, 27),
        "jb_12_20",
    )
    # January 2027 rent: 31 Dec is nyårsafton, so the due date is Wednesday 30 Dec
    assert charge_due_date("2027-01", invoice_due=None, lease_due_day=None)[0] == date(2026, 12, 30)


def test_lease_due_day_on_a_weekend_moves_to_next_working_day() -> None:
    # 1 March 2026 is a Sunday
    assert lease_due_date("2026-03", 1) == date(2026, 3, 2)
