"""Past days Voluum restated since the last sync, found once per account and run (issue #24).

Voluum changes past days: under visit-time reporting a late postback adds to its visit's
day, uploads correct conversions of any age, imported cost replaces estimates, manual cost
updates cover any range (`../shared/voluum-api.md` §11). Before an account's first report
stream reads, `RestatedDays` asks Voluum for every day's figures over the horizon
(`restatement_days` back from the range's end, never before `start_date`; grouped by day,
a request per 31 days), prints each day (`restatement.day_print`) and compares the prints
with the ones the state keeps (`restatement.DayPrints`, under the tap-level key
`restated_days`). The days whose print changed are read again by every report stream
(`WindowPlan(restated=...)`), whole, in as few requests as their spread allows.

The new prints are kept only once every selected report stream of the account read its
windows (`unit_done`); a stream that failed leaves the restated days' old prints, and a
sync stopped before the end leaves them all: the next sync restates those days again.
Nothing is lost to a kill, at worst a day is read twice. The check never fails a sync: a
check Voluum does not answer is said in one WARNING, and that sync restates nothing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_voluum.accounts import account_of
from tap_voluum.client import extract_list
from tap_voluum.errors import RUN_ENDING_ERRORS, VoluumError
from tap_voluum.restatement import (
    DayPrints,
    changed_line,
    check_windows,
    day_prints,
    figure_columns,
    fresh_line,
    horizon,
    unchanged_line,
)
from tap_voluum.sdk_compat import bookmark_ahead, keep_tap_entry, sync_units, write_state
from tap_voluum.stamps import RowStamp
from tap_voluum.streams.windows import Window, parse_setting_datetime, range_end

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping
    from zoneinfo import ZoneInfo

    from singer_sdk import Stream, Tap
    from singer_sdk.helpers.types import Context

    from tap_voluum.client import VoluumClient
    from tap_voluum.readings import Readings


class CheckedStream(Protocol):
    """What the check takes from the report stream that asks first (`WindowedStream`)."""

    name: str
    client: VoluumClient

    @property
    def logger(self) -> logging.Logger:
        """The tap's logger."""

    @property
    def config(self) -> Mapping[str, Any]:
        """The tap's settings."""

    def settings(self, context: Context | None) -> dict[str, Any]:
        """The settings of the context's account."""

    def tz(self, context: Context | None) -> ZoneInfo:
        """The report time zone of the context's account."""

    def failed_for(self, context: Context | None) -> bool:
        """Whether its work for the context's account stopped."""


STATE_KEY = "restated_days"
"""The tap-level state entry (beside `bookmarks`): each account's day prints."""
PRINT_SETTINGS = ("timezone", "currency", "workspace_ids", "conversion_time_mode")
"""The settings that shape every day's figures: a change starts the prints afresh."""
CHECK_ROWS = 1000
"""Rows asked for per check request (a day a row: a window of 31 days is one page)."""


@dataclass
class AccountCheck:
    """One account's check in this run: the days restated, the prints to keep after."""

    old: DayPrints
    now: dict[date, str] = field(default_factory=dict)
    restated: tuple[date, ...] = ()
    reach: tuple[date, date] | None = None
    pending: set[str] = field(default_factory=set)
    """Selected report streams that have not finished this account yet."""
    failed: bool = False
    """The check or a report stream of the account failed: restated days keep old prints."""
    owed: dict[str, set[date]] = field(default_factory=dict)
    """Restated days a report stream left out of a sync has yet to read, by stream."""


class RestatedDays:
    """The run's restatement check: per account, once, before its first report stream."""

    def __init__(self, tap: Tap, readings: Readings, kept: Any = None) -> None:
        self.tap = tap
        self.readings = readings
        self.kept: dict[str, Any] = dict(kept) if isinstance(kept, dict) else {}
        """Each account's prints as the input state had them (`DayPrints.to_state`)."""
        self.checks: dict[str, AccountCheck] = {}
        self.lock = threading.RLock()
        keep_tap_entry(tap, STATE_KEY, dict(self.kept))

    def days(self, stream: CheckedStream, context: Context | None) -> tuple[date, ...]:
        """The account's restated days (checked on the first call for the account)."""
        account = stream.client.account(account_of(context)).name
        with self.lock:
            check = self.checks.get(account)
            if check is None:
                check = self.checks[account] = self.check(stream, context, account)
            return tuple(sorted({*check.restated, *check.owed.get(stream.name, ())}))

    def check(self, stream: CheckedStream, context: Context | None, account: str) -> AccountCheck:
        """Read every day's figures over the horizon and compare them with the kept prints."""
        settings = stream.settings(context)
        stamp = RowStamp.of(settings, PRINT_SETTINGS).settings
        old, why = DayPrints.from_state(self.kept.get(account), stamp)
        check = AccountCheck(old, pending={s.name for s in self.report_streams(context)})
        days = int(stream.config.get("restatement_days") or 0)
        end = range_end(stream.tz(context), stream.config.get("end_date"))
        end_day = (end - timedelta(hours=1)).date()
        start_day = parse_setting_datetime(str(settings["start_date"])).date()
        check.reach = horizon(end_day, days, start_day)
        if check.reach is None:
            check.failed = True  # nothing to check: keep what is kept
            return check
        if not why:
            check.owed = owed_days(self.kept.get(account), check.reach)
        label = account if len(stream.client.accounts) > 1 else ""
        try:
            check.now = self.read_prints(stream, context, check.reach, end)
        except RUN_ENDING_ERRORS:
            raise
        except (VoluumError, RetriableAPIError, requests.RequestException) as exc:
            check.failed = True
            stream.logger.warning(
                "%srestated days not checked (%s): this sync re-reads only its usual range",
                f"{label}: " if label else "",
                exc,
            )
            return check
        previous_end = max(old.prints) if old.prints else None
        check.restated = tuple(old.restated(check.now, before=previous_end))
        if why:
            stream.logger.info("%s", fresh_line(label, check.reach, why))
        elif check.restated:
            streams = len(check.pending)
            stream.logger.info("%s", changed_line(label, check.restated, streams))
        else:
            stream.logger.info("%s", unchanged_line(label, check.reach))
        return check

    def read_prints(
        self,
        stream: CheckedStream,
        context: Context | None,
        reach: tuple[date, date],
        end: datetime,
    ) -> dict[date, str]:
        """Every day's print over `reach`, a request per 31 days (grouped by day), side by side."""
        settings = stream.settings(context)
        extra = {c for s in self.report_streams(context) for c in s.schema["properties"]}
        columns = figure_columns(extra)
        widest = self.readings.widest_span() or 31
        spans = check_windows(*reach, max_days=min(31, widest))

        def answer(span: tuple[date, date]) -> Any:
            first, last = span
            start = datetime.combine(first, datetime.min.time())
            window = Window(start, min(start + timedelta(days=(last - first).days + 1), end))
            params: dict[str, Any] = {**window.params, "tz": str(settings["timezone"])}
            params.update({"groupBy": "day", "include": "ALL", "limit": CHECK_ROWS, "offset": 0})
            if settings.get("currency"):
                params["currency"] = settings["currency"]
            if settings.get("workspace_ids"):
                params["workspaces"] = list(settings["workspace_ids"])
            if stream.config.get("conversion_time_mode"):
                params["conversionTimeMode"] = stream.config["conversion_time_mode"]
            return stream.client.get_json("/report", params, account=account_of(context))

        rows: dict[date, dict] = {}
        with ThreadPoolExecutor(max_workers=len(spans)) as pool:  # side by side: one wait
            for payload in pool.map(answer, spans):
                for row in extract_list(payload, "rows"):
                    day = str(row.get("day") or "")[:10]
                    if len(day) == 10:
                        rows[date.fromisoformat(day)] = row
        return day_prints(rows, reach[0], reach[1], columns)

    def report_streams(self, context: Context | None) -> list[Stream]:
        """The selected report streams synced for `context`'s account (restating ones)."""
        account = account_of(context)
        return [
            s
            for s, c in sync_units(self.tap)
            if getattr(s, "restates", False) and account_of(c) == account
        ]

    def unit_done(self, stream: CheckedStream, context: Context | None) -> None:
        """A report stream finished the account: once all have, keep the new prints."""
        account = stream.client.account(account_of(context)).name
        with self.lock:
            check = self.checks.get(account)
            if check is None or check.reach is None:
                return
            if stream.failed_for(context):
                check.failed = True
            else:
                check.owed.pop(stream.name, None)
            check.pending.discard(stream.name)
            if check.pending or not check.now:
                return
            keep_old = check.restated if check.failed else ()
            kept = check.old.updated(check.now, keep_old=keep_old, horizon=check.reach)
            for left_out in self.left_out(context):
                check.owed.setdefault(left_out, set()).update(check.restated)
            self.kept[account] = {**kept.to_state(), **owed_state(check.owed)}
            keep_tap_entry(self.tap, STATE_KEY, dict(self.kept))
            write_state(cast("Stream", stream), force=True)

    def left_out(self, context: Context | None) -> list[str]:
        """Report streams not synced in this run whose bookmark says they were before.

        They owe the days restated meanwhile: their next sync reads them (`owed`).
        """
        synced = {s.name for s in self.report_streams(context)}
        return [
            s.name
            for s in self.tap.streams.values()
            if getattr(s, "restates", False)
            and s.name not in synced
            and bookmark_ahead(s, context) is not None
        ]

    def describe(self, account: str) -> str:
        """One line on the account's check in this run (`settled` block)."""
        days = int(self.tap.config.get("restatement_days") or 0)
        if not days:
            return "restated days not checked (restatement_days: 0)"
        check = self.checks.get(account)
        if check is None or check.reach is None:
            return f"restatement horizon {days} days back from the range's end (not checked)"
        first, last = check.reach
        reach = f"restatement horizon {first:%Y-%m-%d} .. {last:%Y-%m-%d}"
        if check.failed and not check.now:
            return f"{reach}: not checked (Voluum did not answer the check)"
        return f"{reach}: {len(check.restated)} past days restated since the last sync"


def owed_days(entry: Any, reach: tuple[date, date]) -> dict[str, set[date]]:
    """The days each left-out stream owes, as an account's entry keeps them (inside `reach`)."""
    owed = entry.get("owed") if isinstance(entry, dict) else None
    if not isinstance(owed, dict):
        return {}
    days: dict[str, set[date]] = {}
    for name, texts in owed.items():
        if isinstance(name, str) and isinstance(texts, list):
            found = {d for t in texts if (d := _day(t)) and reach[0] <= d <= reach[1]}
            if found:
                days[name] = found
    return days


def owed_state(owed: Mapping[str, set[date]]) -> dict[str, Any]:
    """`{"owed": {stream: [days]}}` for an account's entry, or nothing when none is owed."""
    kept = {name: sorted(d.isoformat() for d in days) for name, days in owed.items() if days}
    return {"owed": kept} if kept else {}


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        return None
