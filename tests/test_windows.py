"""Windows sized by the data: the plan's arithmetic, and a sync whose windows are split."""

from __future__ import annotations

import itertools
import logging
import random
from datetime import date, datetime, timedelta
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


# --- restated days before the range (issue #24 §2) -------------------------------------

TODAY = date(2026, 5, 2)
NOW = datetime(2026, 5, 2, 15)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def sparse(days: int | None = None, restated: tuple[int, ...] = (80, 50, 10)) -> WindowPlan:
    """The range D-1 .. now, and restated days D-80, D-50, D-10 before it."""
    return WindowPlan(ago(1), NOW, days=days, restated=[ago(n) for n in restated])


def test_restated_days_are_read_in_the_fewest_windows_of_a_month_at_most() -> None:
    p = sparse()
    assert p.start == at(ago(80)) and p.windows_left() == 2
    assert cut_all(p) == [
        Window(at(ago(80)), at(ago(49))),  # D-80 .. D-50: 31 days, the days between unwanted
        Window(at(ago(10)), NOW),  # D-10 .. now: on into the range
    ]
    assert p.windows_left() == 0 and p.next() is None
    wanted = [n for n in range(90) if p.wants(ago(n))]
    assert wanted == [0, 1, 10, 50, 80]


def test_restated_days_far_apart_take_a_window_each() -> None:
    p = sparse(restated=(85, 50, 10))  # D-85 .. D-50 is 36 days: too wide for one
    assert cut_all(p) == [
        Window(at(ago(85)), at(ago(84))),
        Window(at(ago(50)), at(ago(49))),
        Window(at(ago(10)), NOW),
    ]


def test_one_day_windows_read_each_restated_day_alone() -> None:
    p = sparse(days=1)
    assert p.windows_left() == 5
    left = []
    cut_ = []
    while (w := p.next()) is not None:
        cut_.append(w)
        left.append(p.windows_left())
    assert [w.first_day for w in cut_] == [ago(80), ago(50), ago(10), ago(1), ago(0)]
    assert cut_[-1] == Window(at(TODAY), NOW) and all(w.days == 1 for w in cut_)
    assert left == [4, 3, 2, 1, 0]


def test_a_window_split_by_rows_reads_only_the_parts_with_restated_days() -> None:
    p = sparse(restated=(80, 79, 60, 50, 10))
    p.max_rows = 1000
    first = p.next()
    assert first == Window(at(ago(80)), at(ago(49)))
    parts, why, _ = p.resize(first, 3100, None, lambda days: days)  # 100 rows a day: 10 days
    assert parts == [  # not [D-70, D-60): no restated day in it
        Window(at(ago(80)), at(ago(78))),
        Window(at(ago(60)), at(ago(59))),
        Window(at(ago(50)), at(ago(49))),
    ]
    assert "read in 3 parts" in why
    assert p.next() == Window(at(ago(10)), at(ago(0)))  # 10 days a window now
    assert p.next() == Window(at(ago(0)), NOW) and p.next() is None


def test_a_halved_sparse_window_drops_its_unwanted_ends() -> None:
    p = sparse(restated=(80, 75, 50))
    window = p.next()
    assert window == Window(at(ago(80)), at(ago(49)))
    parts, _, warning = p.resize(window, None, requests.exceptions.Timeout("slow"), lambda d: d)
    assert warning and parts == [
        Window(at(ago(80)), at(ago(74)), halved=True),
        Window(at(ago(50)), at(ago(49)), halved=True),
    ]


def test_restated_days_inside_the_range_change_nothing() -> None:
    plain = WindowPlan(ago(1), NOW, days=None)
    inside = WindowPlan(ago(1), NOW, days=None, restated=[ago(1), ago(0), TODAY + timedelta(1)])
    assert inside.restated == () and inside.same_range(plain)
    assert cut_all(inside) == cut_all(WindowPlan(ago(1), NOW, days=None))
    assert not sparse().same_range(plain)
    assert sparse().same_range(sparse()) and not sparse().same_range(sparse(restated=(80,)))


def test_restated_days_before_an_empty_range_are_still_read() -> None:
    p = WindowPlan(TODAY, at(TODAY), days=None, restated=[ago(3)])
    assert not p.empty and cut_all(p) == [Window(at(ago(3)), at(ago(2)))]
    assert p.windows_left() == 0


def test_a_sparse_plan_describes_its_restated_days() -> None:
    p = sparse()
    first = p.next()
    assert first is not None
    p.learn(first, 3100)  # 100 rows a day, 1000-row pages: 4 pages, then 2
    assert p.describe(1000, 1000, 10.0) == (
        "3 restated days (2026-02-11 .. 2026-04-22) and 2026-05-01 00:00 → 2026-05-02 15:00, "
        "2 windows of at most 31 days, about 6 requests, about 0.6 s at 10 requests/s"
    )


@pytest.mark.parametrize("seed", range(40))
def test_sparse_plans_cover_every_wanted_day_and_start_and_end_on_one(seed: int) -> None:
    rng = random.Random(seed)
    restated = rng.sample(range(2, 120), rng.randint(1, 12))
    width = rng.choice([None, 1, 3, 31])
    p = sparse(days=width, restated=tuple(restated))
    promised = p.windows_left()
    cut_ = cut_all(p)
    assert len(cut_) == promised
    assert all(a.end <= b.start for a, b in itertools.pairwise(cut_))
    assert all(w.days <= (width or 31) for w in cut_)
    read = {w.start.date() + timedelta(days=d) for w in cut_ for d in range(w.days)}
    assert {ago(n) for n in [*restated, 1, 0]} <= read
    assert all(p.wants(w.first_day) and p.wants(w.last_hour.date()) for w in cut_)
