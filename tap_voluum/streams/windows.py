"""Date windows in the report time zone, and how wide each one is.

A window is `[start, end)` on whole hours of wall-clock time in `timezone`: Voluum reads
`from`/`to` that way, so a local day may last 23 or 25 hours. `WindowPlan` cuts a sync's
range into windows one at a time, as wide as the data allows:

- automatic (`report_window_days` unset): up to `MAX_AUTO_DAYS` local days, narrowed so a
  window holds about `MAX_WINDOW_ROWS` rows at most, from the rows per day the last window
  answered with (`learn`); a window whose first page says it holds more is split before
  the rest of it is read (`split_for_rows`);
- a user's `report_window_days` is used as it is;
- whatever the sizing, a window Voluum refuses for its span is halved, and the widest span
  that worked holds for the rest of the run (`Readings.widest_span`); a window that keeps
  failing after its retries is halved once (`split_in_halves`).

A plan may also read some days before its range (`restated`: past days Voluum changed,
issue #24 §2). The plan then starts at the earliest of them and reads only the days it
`wants`: before its first day, the cursor jumps to the next restated day, and a window
ends after the last restated day it reaches (or runs on into the range). A window may
span unwanted days between restated ones (one read is cheaper than several narrow ones),
still at most the usual width and split by rows as ever; the read path drops the rows of
the days the plan does not want. Without `restated` a plan cuts as it always did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from tap_voluum.errors import TRANSIENT_EXCEPTIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

PARAM_FORMAT = "%Y-%m-%dT%H:00:00"
MAX_AUTO_DAYS = 31
"""Widest automatic window: public clients read a month per call (S4 cuts at 31 days)."""
MAX_WINDOW_ROWS = 200_000
"""Rows an automatic window should hold at most: what a resume may read again, and memory."""


@dataclass(frozen=True)
class Window:
    """`[start, end)` in local wall-clock time, whole hours."""

    start: datetime
    end: datetime
    halved: bool = False
    """Cut in two after failing: not halved again for errors."""

    @property
    def params(self) -> dict[str, str]:
        """Voluum's `from`/`to` for this window."""
        return {"from": self.start.strftime(PARAM_FORMAT), "to": self.end.strftime(PARAM_FORMAT)}

    @property
    def days(self) -> int:
        """Local days the window touches (a last, short window counts its part day)."""
        return max(1, math.ceil((self.end - self.start) / timedelta(days=1)))

    @property
    def first_day(self) -> date:
        """The local day the window starts."""
        return self.start.date()

    @property
    def last_hour(self) -> datetime:
        """The start of the window's last hour (wall clock)."""
        return self.end - timedelta(hours=1)

    def day_windows(self) -> list[Window]:
        """The window cut into single local days."""
        return cut(self.start, self.end, 1)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}"


def parse_setting_datetime(value: str) -> datetime:
    """Read a date or date-time setting; the wall-clock part is what counts."""
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))


def ceil_hour(moment: datetime) -> datetime:
    """Round a naive wall-clock time up to the next whole hour."""
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def local_now(tz: ZoneInfo) -> datetime:
    """Now, as naive wall-clock time in `tz`."""
    return datetime.now(timezone.utc).astimezone(tz).replace(tzinfo=None)


def range_end(tz: ZoneInfo, end_date: str | None) -> datetime:
    """`min(end_date, now)` as local wall-clock time, rounded up to a whole hour."""
    end = ceil_hour(local_now(tz))
    if end_date:
        end = min(end, ceil_hour(parse_setting_datetime(end_date).replace(tzinfo=None)))
    return end


def aware(local: datetime, tz: ZoneInfo) -> datetime:
    """Attach `tz` to a naive wall-clock time (the first of two in a repeated hour)."""
    return local.replace(tzinfo=tz, fold=0)


def cut(start: datetime, end: datetime, days: int) -> list[Window]:
    """Cut `[start, end)` into windows of `days` local days (the last may be short)."""
    windows: list[Window] = []
    cursor = start
    while cursor < end:
        following = min(cursor + timedelta(days=days), end)
        windows.append(Window(cursor, following))
        cursor = following
    return windows


class WindowPlan:
    """A sync's range, cut into windows one at a time, each as wide as the data allows."""

    def __init__(
        self,
        first_day: date,
        end: datetime,
        *,
        days: int | None,
        widest: Callable[[], int | None] = lambda: None,
        max_rows: int | None = None,
        restated: Iterable[date] = (),
    ) -> None:
        self.normal_start = _midnight(first_day)
        """Where the range starts (`start` may be earlier, at the first restated day)."""
        self.end = end
        self.restated = tuple(
            sorted({d for d in restated if _midnight(d) < min(self.normal_start, end)})
        )
        """Days before the range read too (days later in it are read anyway)."""
        self._restated = frozenset(self.restated)
        self.start = _midnight(self.restated[0]) if self.restated else self.normal_start
        self.cursor = self.start
        self.fixed_days = days
        """The user's `report_window_days`; None: automatic."""
        self.widest = widest
        """The widest span Voluum accepted in this run, if it refused one."""
        self.max_rows = max_rows or MAX_WINDOW_ROWS
        self.rows_per_day: float | None = None
        self.described = False
        """Whether the plan line was logged."""
        self.label = ""
        """Whose plan this is in log lines (`account/stream` with several accounts)."""

    @property
    def automatic(self) -> bool:
        """Whether the data sizes the windows."""
        return self.fixed_days is None

    def same_range(self, other: WindowPlan) -> bool:
        """Whether two plans cut the same range the same way."""
        return (self.start, self.end, self.fixed_days, self.normal_start, self.restated) == (
            other.start,
            other.end,
            other.fixed_days,
            other.normal_start,
            other.restated,
        )

    @property
    def empty(self) -> bool:
        """Whether the range holds no hour at all."""
        return self.start >= self.end

    def days(self) -> int:
        """How many local days the next window takes."""
        days = self.fixed_days or MAX_AUTO_DAYS
        if self.automatic and self.rows_per_day:
            days = max(1, min(days, int(self.max_rows // self.rows_per_day)))
        widest = self.widest()
        return max(1, min(days, widest)) if widest else days

    def wants(self, day: date) -> bool:
        """Whether the plan reads `day`'s rows: a day of the range, or a restated one."""
        return day >= self.normal_start.date() or day in self._restated

    def next(self) -> Window | None:
        """Cut the next window off the range, or None when all of it is cut."""
        if self.restated:
            self.cursor = self._wanted_from(self.cursor)
        if self.cursor >= self.end:
            return None
        window = self._cut(self.cursor, self.end, self.days(), first_only=True)[0]
        self.cursor = self._wanted_from(window.end) if self.restated else window.end
        return window

    def windows_left(self) -> int:
        """Windows not cut yet, at today's width."""
        if self.restated:
            return len(self._cut(self.cursor, self.end, self.days()))
        left = self.end - self.cursor
        return max(0, math.ceil(left / timedelta(days=self.days())))

    def _cut(
        self, start: datetime, end: datetime, days: int, *, first_only: bool = False
    ) -> list[Window]:
        """`cut`, of the wanted days only: each window trimmed to the days it wants."""
        if not self.restated:
            return cut(start, end, days)[:1] if first_only else cut(start, end, days)
        windows: list[Window] = []
        cursor = self._wanted_from(start)
        while cursor < end and not (first_only and windows):
            window = self._trim(Window(cursor, min(cursor + timedelta(days=days), end)))
            if window is None:  # cannot be: the cursor is on a wanted day
                break
            windows.append(window)
            cursor = self._wanted_from(window.end)
        return windows

    def _wanted_from(self, moment: datetime) -> datetime:
        """The first wanted hour at or after `moment`."""
        if moment >= self.normal_start:
            return moment
        for day in self.restated:
            start = _midnight(day)
            if start + timedelta(days=1) > moment:
                return max(start, moment)
        return self.normal_start

    def _wanted_until(self, moment: datetime) -> datetime | None:
        """The end of the last wanted hour before `moment`, or None."""
        if moment > self.normal_start:
            return moment
        starts = [_midnight(day) for day in self.restated if _midnight(day) < moment]
        return min(starts[-1] + timedelta(days=1), moment) if starts else None

    def _trim(self, window: Window) -> Window | None:
        """The window without the unwanted days at its ends, or None if it wants none."""
        start = self._wanted_from(window.start)
        end = self._wanted_until(window.end)
        if end is None or start >= end:
            return None
        return replace(window, start=start, end=end)

    def learn(self, window: Window, total_rows: int | None) -> None:
        """A window's first page said how many rows it holds: size the next ones by it."""
        if total_rows is not None:
            self.rows_per_day = total_rows / ((window.end - window.start) / timedelta(days=1))

    def resize(
        self,
        window: Window,
        total_rows: int | None,
        error: BaseException | None,
        refuse_span: Callable[[int], int],
    ) -> tuple[list[Window] | None, str, bool]:
        """The parts to read instead of a window (None: it whole), why, and if that warns.

        With the window's first page (`total_rows`): the next windows are sized by it, and
        a window too big for one read is split. With the error its first page met: a span
        Voluum refuses is halved (`refuse_span` keeps the narrower width for the run); a
        window still failing after its retries is halved once.
        """
        if error is None:
            self.learn(window, total_rows)
            if total_rows is None or not self.too_big(window, total_rows):
                return None, "", False
            parts = self.split_for_rows(window, total_rows)
            why = f"window {window} holds {total_rows} rows: read in {len(parts)} parts"
            return parts, why, False
        if window.days == 1:
            return None, "", False
        if getattr(error, "refuses_range", False):
            widest = refuse_span(window.days)
            why = (
                f"Voluum refused {window.days} days in one request ({error}); "
                f"at most {widest} days a request from now on"
            )
            return self.split_in_halves(window), why, False
        if isinstance(error, TRANSIENT_EXCEPTIONS) and not window.halved:
            why = f"window {window} still failing after its retries ({error}): reading it in halves"
            return self.split_in_halves(window, after_errors=True), why, True
        return None, "", False

    def too_big(self, window: Window, total_rows: int | None) -> bool:
        """Whether an automatic window holds more rows than a window should."""
        return (
            self.automatic
            and total_rows is not None
            and total_rows > self.max_rows
            and window.days > 1
        )

    def split_for_rows(self, window: Window, total_rows: int) -> list[Window]:
        """The window cut in parts of at most `max_rows` rows each, at its rows per day."""
        days = max(1, self.max_rows * window.days // max(total_rows, 1))
        return self._cut(window.start, window.end, days)

    def split_in_halves(self, window: Window, *, after_errors: bool = False) -> list[Window]:
        """The window in two halves of whole days (the first half the longer)."""
        halves = cut(window.start, window.end, math.ceil(window.days / 2))
        if self.restated:
            halves = [trimmed for half in halves if (trimmed := self._trim(half))]
        return [replace(w, halved=True) for w in halves] if after_errors else halves

    def describe(self, served: int, page_size: int, rate: float) -> str:
        """The plan, once the first window's first page (`served` rows) is in.

        Windows are as wide as the rows per day of that answer allow; requests count the
        pages of each window at the page size Voluum served (a page short of the rows
        left and of `page_size` is what Voluum serves at most).
        """
        served = served if 0 < served < page_size else page_size
        if self.restated:
            return self._describe_restated(served, rate)
        days = max(1, round((self.end - self.start) / timedelta(days=1)))
        width = min(self.days(), days)
        windows = math.ceil(days / width)
        pages = max(1, math.ceil((self.rows_per_day or 0) * width / max(served, 1)))
        requests = windows * pages
        return (
            f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}, "
            f"{_count(windows, 'window')} of {_count(width, 'day')}, "
            f"about {_count(requests, 'request')}, about {duration(requests / rate)} "
            f"at {rate:g} requests/s"
        )

    def _describe_restated(self, served: int, rate: float) -> str:
        """`describe` for a plan that reads restated days before its range."""
        width = self.days()
        windows = self._cut(self.start, self.end, width)
        rows = self.rows_per_day or 0
        requests = sum(max(1, math.ceil(rows * w.days / max(served, 1))) for w in windows)
        first, last = self.restated[0], self.restated[-1]
        days = f"{first:%Y-%m-%d}" if first == last else f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}"
        return (
            f"{_count(len(self.restated), 'restated day')} ({days}) and "
            f"{self.normal_start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}, "
            f"{_count(len(windows), 'window')} of at most {_count(width, 'day')}, "
            f"about {_count(requests, 'request')}, about {duration(requests / rate)} "
            f"at {rate:g} requests/s"
        )


def _midnight(day: date) -> datetime:
    """A local day's first hour."""
    return datetime.combine(day, datetime.min.time())


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def duration(seconds: float) -> str:
    """`0.4 s`, `42 s`, `3 min 20 s`, `2 h 05 min`."""
    whole = round(seconds)
    if whole < 60:
        return f"{max(seconds, 0):.0f} s" if seconds >= 1 else f"{max(seconds, 0):.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
