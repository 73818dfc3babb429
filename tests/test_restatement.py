"""Which past days Voluum restated: prints, the state they live in, and the log lines."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tap_voluum.restatement import (
    FIGURES,
    DayPrints,
    changed_line,
    check_windows,
    day_print,
    day_prints,
    figure_columns,
    figure_text,
    fresh_line,
    horizon,
    unchanged_line,
)

END = date(2026, 3, 31)
STAMP = {
    "timezone": "Europe/Warsaw",
    "currency": "EUR",
    "workspace_ids": "w1,w2",
    "conversion_time_mode": "VISIT",
}
COLUMNS = figure_columns(["customConversions1", "customRevenue1"])


def day(n: int) -> date:
    """The day `n` days before END."""
    return END - timedelta(days=n)


def row(**figures: Any) -> dict[str, Any]:
    return {"visits": 100, "clicks": 40, "conversions": 3, "revenue": 12.5, "cost": 7, **figures}


# --- columns and prints --------------------------------------------------------------


def test_figure_columns_are_the_base_then_custom_ones_in_a_stable_order() -> None:
    extra = ["customRevenue2", "profit", "customConversions10", "customConversions2", "campaignId"]
    columns = figure_columns([*extra, "customConversions2", "visits"])
    assert columns == (
        *FIGURES,
        "customConversions2",
        "customConversions10",
        "customRevenue2",
    )
    assert figure_columns(reversed(extra)) == columns
    assert figure_columns([]) == FIGURES == ("visits", "clicks", "conversions", "revenue", "cost")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (12.0, "12"),
        ("12.00", "12"),
        (Decimal("12.000"), "12"),
        (" 12.34 ", "12.34"),
        (12.34, "12.34"),
        (0.1 + 0.2, "0.3"),
        (1200, "1200"),
        ("1.2e3", "1200"),
        (-3.5, "-3.5"),
        (None, "0"),
        ("", "0"),
        (0.0, "0"),
        ("-0.00", "0"),
        (1e-9, "0"),
        ("n/a", "n/a"),
        (1e30, "1" + "0" * 30),
        (123456789012345678901234567890, "123456789012345678901234567890"),
        (10**60, "1" + "0" * 60),
    ],
)
def test_a_figure_reads_the_same_whatever_its_spelling(value: Any, text: str) -> None:
    assert figure_text(value) == text


def test_a_print_is_six_url_safe_characters_and_moves_with_any_figure() -> None:
    base = day_print(row(customConversions1=2, customRevenue1=9.9), COLUMNS)
    assert re.fullmatch(r"[A-Za-z0-9_-]{6}", base)
    for column in COLUMNS:
        changed = row(customConversions1=2, customRevenue1=9.9)
        changed[column] = float(changed[column]) + 0.01
        assert day_print(changed, COLUMNS) != base, column


def test_a_print_ignores_spelling_order_other_columns_and_empty_figures() -> None:
    base = day_print(row(), COLUMNS)
    same = {"visits": "100", "clicks": 40.0, "conversions": Decimal(3), "revenue": "12.50"}
    same |= {"cost": 7.000000000001, "profit": 5.5, "campaignId": "x", "customRevenue1": None}
    assert day_print(same, tuple(reversed(COLUMNS))) == base
    assert day_print(row(), (*COLUMNS, "customConversions7")) == base, "an empty column added"
    assert day_print({}, COLUMNS) == day_print({"visits": 0, "cost": ""}, COLUMNS)
    assert day_print(row(), COLUMNS) != day_print(row(cost=8), COLUMNS)


def test_day_prints_print_every_day_a_day_without_a_row_as_nothing() -> None:
    prints = day_prints({day(1): row()}, day(2), day(0), COLUMNS)
    assert list(prints) == [day(2), day(1), day(0)]
    assert prints[day(1)] == day_print(row(), COLUMNS)
    assert prints[day(2)] == prints[day(0)] == day_print({}, COLUMNS) != prints[day(1)]


# --- the horizon and its requests ------------------------------------------------------


def test_the_horizon_is_the_last_days_of_the_range_never_before_start_date() -> None:
    assert horizon(END, 90, date(2020, 1, 1)) == (date(2026, 1, 1), END)
    assert horizon(END, 1, date(2020, 1, 1)) == (END, END)
    assert horizon(END, 90, date(2026, 3, 1)) == (date(2026, 3, 1), END), "start_date inside"
    assert horizon(END, 90, END) == (END, END)
    assert horizon(END, 90, END + timedelta(days=1)) is None, "start_date after the range"
    assert horizon(END, 0, date(2020, 1, 1)) is None, "0 turns the check off"


def test_check_windows_cut_the_horizon_in_spans_of_a_month_at_most() -> None:
    spans = check_windows(date(2026, 1, 1), END)  # 90 days
    assert spans == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 3, 3)),
        (date(2026, 3, 4), END),
    ]
    assert check_windows(END, END) == [(END, END)]
    assert check_windows(day(30), END) == [(day(30), END)]
    assert check_windows(day(31), END) == [(day(31), day(1)), (END, END)]
    pairs = [(day(4), day(3)), (day(2), day(1)), (END, END)]
    assert check_windows(day(4), END, max_days=2) == pairs
    assert check_windows(END, day(1)) == []
    with pytest.raises(ValueError, match="at least 1"):
        check_windows(day(1), END, max_days=0)


# --- the state -------------------------------------------------------------------------


def prints_of(days: range, salt: str = "") -> dict[date, str]:
    return {day(n): day_print(row(visits=f"{n}{salt}"), COLUMNS) for n in days}


def test_the_state_round_trips_with_gaps_and_stays_small_at_90_days() -> None:
    prints = prints_of(range(90))
    del prints[day(40)], prints[day(41)]
    kept = DayPrints(dict(STAMP), prints)
    state = kept.to_state()
    text = json.dumps(state)
    assert len(text.encode()) < 2048, len(text)
    assert state["first"] == "2026-01-01" and ",,," in state["prints"]
    back, reason = DayPrints.from_state(json.loads(text), STAMP)
    assert reason is None and back == kept
    empty, reason = DayPrints.from_state(DayPrints(dict(STAMP)).to_state(), STAMP)
    assert reason is None and empty.prints == {}


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        [1, 2],
        {},
        {"stamp": STAMP, "first": "2026-01-01", "prints": "abcdef"},  # no format
        {"format": 2, "stamp": STAMP, "first": "2026-01-01", "prints": "abcdef"},
        {"format": 1, "stamp": "x", "first": "2026-01-01", "prints": "abcdef"},
        {"format": 1, "stamp": {"timezone": 3}, "first": "2026-01-01", "prints": "abcdef"},
        {"format": 1, "stamp": STAMP, "first": "yesterday", "prints": "abcdef"},
        {"format": 1, "stamp": STAMP, "first": None, "prints": "abcdef"},
        {"format": 1, "stamp": STAMP, "first": "2026-01-01", "prints": "abc,defghi"},
        {"format": 1, "stamp": STAMP, "first": "2026-01-01", "prints": "abcdef\n"},
        {"format": 1, "stamp": STAMP, "first": "2026-01-01", "prints": ["abcdef"]},
    ],
)
def test_a_state_that_cannot_be_read_gives_no_prints_and_says_why(value: Any) -> None:
    kept, reason = DayPrints.from_state(value, STAMP)
    assert kept == DayPrints(STAMP, {})
    assert reason is not None and reason.startswith("fingerprints unreadable (")


def test_no_state_gives_no_prints() -> None:
    assert DayPrints.from_state(None, STAMP) == (DayPrints(STAMP, {}), "no fingerprints yet")


def test_a_changed_setting_starts_the_prints_afresh_and_is_named() -> None:
    state = DayPrints(dict(STAMP), prints_of(range(5))).to_state()
    now = {**STAMP, "timezone": "UTC", "currency": "USD"}
    kept, reason = DayPrints.from_state(state, now)
    assert kept == DayPrints(now, {})
    assert reason == "timezone, currency changed since the last fingerprints"
    newly_stamped = {**STAMP, "report_dialect": "v2"}
    kept, reason = DayPrints.from_state(state, newly_stamped)
    assert reason is None and len(kept.prints) == 5 and kept.stamp == newly_stamped


def test_restated_days_are_the_days_printed_before_whose_print_moved() -> None:
    old = DayPrints(dict(STAMP), prints_of(range(1, 10)))
    now = prints_of(range(12))  # days 0, 10, 11 never printed: read, not restated
    now[day(3)] = now[day(7)] = now[day(9)] = "zzzzzz"
    assert old.restated(now) == [day(9), day(7), day(3)]
    assert old.restated(now, before=day(5)) == [day(9), day(7)]
    assert DayPrints(dict(STAMP)).restated(now) == [], "a first sync restates nothing"


def test_updated_prints_keep_old_ones_for_days_not_re_read_and_stay_in_the_horizon() -> None:
    old = DayPrints(dict(STAMP), prints_of(range(2, 20)))
    now = prints_of(range(10), salt="x")  # days 10..19 not checked this time (failed)
    new = old.updated(now, keep_old=[day(3), day(0)], horizon=(day(14), day(0)))
    assert min(new.prints) == day(14) and max(new.prints) == day(1)
    assert new.prints[day(3)] == old.prints[day(3)], "not re-read: restated again next time"
    assert day(0) not in new.prints, "never printed, not re-read: stays unprinted"
    assert new.prints[day(5)] == now[day(5)] != old.prints[day(5)]
    assert new.prints[day(1)] == now[day(1)]
    assert new.prints[day(12)] == old.prints[day(12)], "not checked: the old print holds"
    assert new.restated(prints_of(range(10), salt="x")) == [day(3)]
    assert new.stamp == STAMP and old.prints == prints_of(range(2, 20)), "old left as it was"


def test_a_year_of_updates_keeps_the_state_bounded() -> None:
    kept = DayPrints(dict(STAMP))
    for n in range(365):
        today = END + timedelta(days=n)
        window = horizon(today, 90, date(2025, 1, 1))
        assert window is not None
        first, last = window
        now = {first + timedelta(days=k): f"{k:06d}" for k in range((last - first).days + 1)}
        kept = kept.updated(now, horizon=window)
    assert len(kept.prints) == 90
    assert len(json.dumps(kept.to_state())) < 2048


# --- log lines -------------------------------------------------------------------------


def test_the_lines_say_what_changed_with_an_account_only_when_named() -> None:
    days = [date(2026, 3, 1), date(2026, 2, 3), date(2026, 2, 10)]
    assert changed_line("north", days, 8) == (
        "north: 3 past days changed since the last sync (2026-02-03 .. 2026-03-01); "
        "re-reading them in 8 streams"
    )
    assert changed_line("", [date(2026, 2, 3)], 1) == (
        "1 past day changed since the last sync (2026-02-03); re-reading it in 1 stream"
    )
    with pytest.raises(ValueError, match="unchanged_line"):
        changed_line("north", [], 8)
    checked = (date(2026, 1, 1), END)
    assert unchanged_line("north", checked) == (
        "north: no past day changed since the last sync (checked 2026-01-01 .. 2026-03-31)"
    )
    assert unchanged_line("", (END, END)) == (
        "no past day changed since the last sync (checked 2026-03-31)"
    )
    assert fresh_line("south", checked, "no fingerprints yet") == (
        "south: no fingerprints yet; fingerprinting 2026-01-01 .. 2026-03-31 for the next sync"
    )
