"""Windows sized by the data: the plan's arithmetic, and a sync whose windows are split."""

from __future__ import annotations

import itertools
import logging
from datetime import date, datetime
from typing import TYPE_CHECKING

import pytest
import requests

from tap_voluum.errors import VoluumAPIError
from tap_voluum.streams import windows
from tap_voluum.streams.windows import Window, WindowPlan
from tests.conftest import config_for
from tests.helpers import run_tap
from tests.truth import assert_daily_report_matches

if TYPE_CHECKING:
    from voluum_sandbox import Dataset, SandboxServer

END = datetime(2026, 5, 3)


def plan(days: int | None = None, widest: int | None = None, max_rows: int = 1000) -> WindowPlan:
    return WindowPlan(date(2026, 1, 1), END, days=days, widest=lambda: widest, max_rows=max_rows)


def spans(windows_: list[Window]) -> list[int]:
    return [w.days for w in windows_]


def cut_all(p: WindowPlan) -> list[Window]:
    out = []
    while (w := p.next()) is not None:
        out.append(w)
    return out


def test_automatic_windows_are_a_month_at_most_and_cover_the_range() -> None:
    cut = cut_all(plan())
    assert spans(cut) == [31, 31, 31, 29]  # 122 days
    assert cut[0].start == datetime(2026, 1, 1) and cut[-1].end == END
    assert all(a.end == b.start for a, b in itertools.pairwise(cut))


def test_a_users_width_wins() -> None:
    assert spans(cut_all(plan(days=91))) == [91, 31]
    assert spans(cut_all(plan(days=1)))[:3] == [1, 1, 1]


def test_rows_per_day_narrow_the_next_windows() -> None:
    p = plan(max_rows=1000)
    first = p.next()
    assert first is not None
    parts, why, warning = p.resize(first, 3100, None, lambda days: days)  # 100 rows a day
    assert spans(parts or []) == [10, 10, 10, 1] and "holds 3100 rows: read in 4 parts" in why
    assert not warning
    assert p.next() == Window(datetime(2026, 2, 1), datetime(2026, 2, 11))  # 1000 / 100 days
    fixed = plan(days=31, max_rows=1000)
    window = fixed.next()
    assert window is not None
    assert fixed.resize(window, 3100, None, lambda days: days)[0] is None, "the user's width"


def test_a_refused_span_halves_the_window_and_holds_for_the_run() -> None:
    refused: list[int] = []
    widest: list[int] = []
    p = WindowPlan(date(2026, 1, 1), END, days=None, widest=lambda: widest[-1] if widest else None)
    window = p.next()
    assert window is not None
    error = VoluumAPIError("x", status=400, code="BAD_REQUEST", detail="Time range is too long")

    def refuse(days: int) -> int:
        refused.append(days)
        widest.append((days + 1) // 2)
        return widest[-1]

    parts, why, warning = p.resize(window, None, error, refuse)
    assert spans(parts or []) == [16, 15] and refused == [31] and not warning
    assert "at most 16 days a request from now on" in why
    assert p.next() == Window(datetime(2026, 2, 1), datetime(2026, 2, 17))


def test_a_window_still_failing_is_halved_once() -> None:
    p = plan()
    window = p.next()
    assert window is not None
    error = requests.exceptions.Timeout("slow")
    parts, why, warning = p.resize(window, None, error, lambda days: days)
    assert spans(parts or []) == [16, 15] and warning and "reading it in halves" in why
    assert all(part.halved for part in parts or [])
    again = p.resize((parts or [])[0], None, error, lambda days: days)
    assert again[0] is None, "halved once, then the stream fails"
    day = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert p.resize(day, None, error, lambda days: days)[0] is None


def test_a_window_too_big_is_split_before_it_is_read(
    sandbox: SandboxServer,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """12 campaigns, 7 days = 84 rows; at most 30 a window: split, then narrower windows."""
    monkeypatch.setattr(windows, "MAX_WINDOW_ROWS", 30)
    caplog.set_level(logging.INFO)
    sandbox.clear_requests()
    result = run_tap(config_for(sandbox, max_concurrency=4), {"campaign_report"})
    assert result.failures == {}
    assert_daily_report_matches(result.records["campaign_report"], dataset, "campaign")
    said = [r.getMessage() for r in caplog.records]
    assert any("holds 84 rows: read in 4 parts" in m for m in said), said
    read = sorted(
        (r["query"]["from"][0], r["query"]["to"][0])
        for r in sandbox.requests
        if r["path"] == "/report" and r["status"] == 200
    )
    assert ("2026-03-05T00:00:00", "2026-03-12T00:00:00") in read  # the first answer
    read.remove(("2026-03-05T00:00:00", "2026-03-12T00:00:00"))
    assert read == [  # 12 rows a day: two days (24 rows) a window, no more splits
        ("2026-03-05T00:00:00", "2026-03-07T00:00:00"),
        ("2026-03-07T00:00:00", "2026-03-09T00:00:00"),
        ("2026-03-09T00:00:00", "2026-03-11T00:00:00"),
        ("2026-03-11T00:00:00", "2026-03-12T00:00:00"),
    ]
