"""A month of daily syncs against a Voluum that restates its past (issue #24 §4).

Every sync runs the tap in this process against a real `SandboxServer` whose clock is the
simulated now; `end_date` is that now's wall-clock time in the config's time zone (the tap's
range ends at min(end_date, real now)). Records are upserted by primary key, as a target
would, and compared with `Dataset.truth_rows` at the final clock, never with another run of
the tap. Which days Voluum changed between two syncs comes from the truth too: the per-day
figures at the two clock positions.

Run with `-s` to see the figures (records re-sent, rows off, requests per daily sync).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_tap
from tests.truth import cents
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

DATA_START = date(2026, 1, 1)
DATA_DAYS = 120
TZ = "America/New_York"
FIRST_NOW = datetime(2026, 3, 31, 3)
"""The first sync's simulated now (naive UTC); daily syncs follow at 03:00 UTC."""
START_DATE = "2026-01-20T00:00:00Z"
"""About 100 days before the month's last sync: the check's 90 days do not reach it."""
REACH = 90
GROUPS = {
    "campaign_report": ("campaign", "day"),
    "offer_report": ("offer", "day"),
    "campaign_hourly_report": ("campaign", "day", "hour"),
}
ID_FIELD = {"campaign": "campaignId", "offer": "offerId"}
COUNTS = ("visits", "clicks", "conversions")
MONEY = ("revenue", "cost")
DAY_FIGURES = ("visits", "clicks", "conversions", "revenue_cents", "cost_cents")
CHECK = "check"
"""Requests of the restatement check: `/report` grouped by day alone."""
STATE_KEY = "restated_days"
FIXED_28 = {"restatement_days": 0, "lookback_days": 28}
OFF = {"restatement_days": 0}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(seed=31, start=DATA_START, days=DATA_DAYS, campaigns=6, restatements=True)


@pytest.fixture(scope="module")
def srv(dataset: Dataset) -> Iterator[SandboxServer]:
    with SandboxServer(dataset, rate_limit=None, now=FIRST_NOW) as server:
        yield server


def local(now: datetime, tz: str = TZ) -> datetime:
    """`now` (naive UTC) as naive wall-clock time in `tz`."""
    return now.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def end_day(now: datetime, tz: str = TZ) -> date:
    """The last local day of a range ending at `now` (rounded up to the hour)."""
    end = local(now, tz)
    ceil = end.replace(minute=0, second=0, microsecond=0)
    ceil += timedelta(hours=0 if ceil == end else 1)
    return (ceil - timedelta(hours=1)).date()


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def stream_of(group_by: list[str]) -> str:
    """Which stream a `/report` request served (`CHECK`: grouped by day alone)."""
    levels = [g.lower().replace("-", "").replace("_", "").removesuffix("id") for g in group_by]
    if levels == ["day"]:
        return CHECK
    if "hour" in levels:
        return "campaign_hourly_report"
    return f"{levels[0]}_report"


def table_key(stream: str, record: dict) -> tuple:
    """A record's key in the truth's terms: (entity id, day[, hour])."""
    dims = GROUPS[stream]
    key: tuple = (record[ID_FIELD[dims[0]]], record["day"])
    return (*key, record["hour"]) if "hour" in dims else key


def rows_off(got: dict[tuple, dict], truth: dict[tuple, dict]) -> list[str]:
    """Each key missing, extra, or with a figure unlike the truth's (money to the cent)."""
    wrong = [f"missing {k}" for k in sorted(truth.keys() - got.keys())]
    wrong += [f"extra {k}" for k in sorted(got.keys() - truth.keys())]
    for key in sorted(truth.keys() & got.keys()):
        record, expected = got[key], truth[key]
        bad = [f for f in COUNTS if record[f] != expected[f]]
        bad += [m for m in MONEY if cents(record[m]) != expected[f"{m}_cents"]]
        if bad:
            wrong.append(f"{key}: {', '.join(bad)}")
    return wrong


def reach_at(now: datetime, tz: str = TZ) -> tuple[date, date]:
    """The check's reach at `now`: `REACH` local days to the range's end, from start_date."""
    last = end_day(now, tz)
    return max(last - timedelta(days=REACH - 1), date.fromisoformat(START_DATE[:10])), last


def changed_days(
    srv: SandboxServer, dataset: Dataset, before: datetime, now: datetime, tz: str = TZ
) -> set[date]:
    """Days before `before`'s last day whose per-day truth differs between the two clocks."""
    first, last = reach_at(before, tz)
    span = (midnight(first), midnight(last))
    srv.configure(now=before)
    old = dataset.truth_rows(["day"], *span, tz, include="ALL")
    srv.configure(now=now)
    new = dataset.truth_rows(["day"], *span, tz, include="ALL")
    return {
        date.fromisoformat(day)
        for (day,) in old.keys() | new.keys()
        if [old.get((day,), {}).get(f, 0) for f in DAY_FIGURES]
        != [new.get((day,), {}).get(f, 0) for f in DAY_FIGURES]
    }


def fewest_windows(days: set[date], max_days: int = 31) -> int:
    """The fewest spans of at most `max_days` days that cover `days` (greedy: optimal)."""
    count, covered_to = 0, None
    for day in sorted(days):
        if covered_to is None or day > covered_to:
            count, covered_to = count + 1, day + timedelta(days=max_days - 1)
    return count


@dataclass
class Daily:
    """One daily sync, per stream: the days Voluum changed it should read again, what it did."""

    changed: dict[str, list[date]] = field(default_factory=dict)
    """Days before the stream's range whose truth changed since the last sync (in reach)."""
    reread: dict[str, list[date]] = field(default_factory=dict)
    """Days before the stream's range its records carried."""
    fewest: dict[str, int] = field(default_factory=dict)
    """The fewest 31-day windows over the changed days and the range (12 campaigns x 24
    hours x 31 days < 10,000 rows: one page a window)."""
    requests: Counter[str] = field(default_factory=Counter)
    """`/report` requests, per stream and `CHECK`."""


@dataclass
class Month:
    """A first sync at `FIRST_NOW`, then daily syncs, each from the last STATE, upserted."""

    srv: SandboxServer
    dataset: Dataset
    config: dict
    streams: tuple[str, ...]
    tables: dict[str, dict[tuple, dict]] = field(default_factory=lambda: defaultdict(dict))
    resent: Counter[str] = field(default_factory=Counter)
    """Records emitted after the first sync, per stream."""
    dailies: list[Daily] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    now: datetime | None = None

    def sync(self, now: datetime) -> SyncResult:
        """One sync at `now` (clock and `end_date` moved) from the last STATE, taken in."""
        before, state = self.now, self.state
        result = self.run(now)
        if state:
            assert_bookmarks_never_move_back(state, result)
        self.take(result, now)
        if before is not None:
            self.dailies.append(self.daily(result, before, state))
        return result

    def run(self, now: datetime, state: dict | None = None, **settings: Any) -> SyncResult:
        """One sync at `now` from `state` (default: the last STATE), not taken in."""
        self.srv.configure(now=now)
        self.srv.clear_requests()
        config = {**self.config, **settings}
        config["end_date"] = local(now, config["timezone"]).isoformat() + "Z"
        result = run_tap(config, set(self.streams), state=self.state if state is None else state)
        assert result.failures == {}, result.failures
        return result

    def take(self, result: SyncResult, now: datetime, messages: int | None = None) -> None:
        """Upsert a sync's records (its first `messages` messages), keep its last STATE."""
        cut = SyncResult(result.messages[:messages]) if messages is not None else result
        for stream in self.streams:
            keys = result.schemas[stream]["key_properties"]
            records = cut.records.get(stream, [])
            for record in records:
                self.tables[stream][tuple(record[k] for k in keys)] = record
            if self.now is not None:
                self.resent[stream] += len(records)
        self.state = cut.final_state or self.state
        self.now = now

    def daily(self, result: SyncResult, before: datetime, state: dict) -> Daily:
        """What a daily sync from `state` should have read again, and what it did."""
        asked = Counter(
            stream_of(r["query"]["groupBy"]) for r in self.srv.requests if r["path"] == "/report"
        )
        now = self.now
        assert now is not None
        on = int(self.config.get("restatement_days", REACH)) > 0
        changed = changed_days(self.srv, self.dataset, before, now) if on else set()
        daily = Daily(requests=asked)
        for stream in self.streams:
            first = normal_start(state, stream, self.config)
            wanted = {d for d in changed if reach_at(now)[0] <= d < first}
            daily.changed[stream] = sorted(wanted)
            days = {date.fromisoformat(r["day"]) for r in result.records.get(stream, [])}
            daily.reread[stream] = sorted(d for d in days if d < first)
            span = (end_day(now) - first).days + 1
            daily.fewest[stream] = fewest_windows(
                wanted | {first + timedelta(days=n) for n in range(span)}
            )
        return daily

    def days(self, count: int) -> Month:
        """The first sync, then `count` daily syncs at 03:00 UTC."""
        for n in range(count + 1):
            self.sync(FIRST_NOW + timedelta(days=n))
        return self

    def off(
        self, stream: str, account: str = "default", dataset: Dataset | None = None
    ) -> list[str]:
        """Rows of `stream` in the check's reach unlike the truth at the last clock."""
        assert self.now is not None
        self.srv.configure(now=self.now)
        first, last = reach_at(self.now)
        truth = (dataset or self.dataset).truth_rows(
            list(GROUPS[stream]),
            midnight(first),
            local(self.now),
            TZ,
            include="ALL",
            currency=self.config.get("currency") or "USD",
        )
        got = {
            table_key(stream, r): r
            for r in self.tables[stream].values()
            if r["account"] == account and first <= date.fromisoformat(r["day"]) <= last
        }
        return rows_off(got, truth)

    def per_sync(self, key: str) -> list[int]:
        """Report requests of a stream (or `CHECK`) in each daily sync."""
        return [daily.requests.get(key, 0) for daily in self.dailies]


def assert_bookmarks_never_move_back(given: dict, result: SyncResult) -> None:
    """No STATE of a sync (a kill may keep any) has a bookmark before the one it started from.

    Windows of restated days lie before the bookmark: they move none. (A bookmark made
    under other settings, `row_settings`, starts again from `start_date`: not compared.)
    """
    started = {
        stream: (datetime.fromisoformat(str(b["replication_key_value"])), b.get("row_settings"))
        for stream, b in bookmarks_of(given).items()
        if b.get("replication_key_value")
    }
    for state in result.states:
        for stream, bookmark in bookmarks_of(state).items():
            value = bookmark.get("replication_key_value")
            if stream in started and value and bookmark.get("row_settings") == started[stream][1]:
                moved = datetime.fromisoformat(str(value))
                assert moved >= started[stream][0], (stream, value)


def normal_start(state: dict, stream: str, config: dict, account: str = "default") -> date:
    """The first day of a stream's usual range from `state`: its bookmark's minus lookback."""
    bookmark = str(bookmarks_of(state, account)[stream]["replication_key_value"])
    lookback = config.get("lookback_days")
    return date.fromisoformat(bookmark[:10]) - timedelta(days=1 if lookback is None else lookback)


def month_config(srv: SandboxServer, **settings: Any) -> dict:
    """The month's config: the tap's defaults (lookback_days unset), then `settings`."""
    return config_for(
        srv,
        **{
            "start_date": START_DATE,
            "timezone": TZ,
            "lookback_days": None,
            "restatement_days": None,
            **settings,
        },
    )


# --- a month of daily syncs ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    streams: tuple[str, ...]
    days: int


QUICK = Spec(("campaign_report",), 10)
FULL = Spec(tuple(GROUPS), 30)
_months: dict[tuple[Spec, str], Month] = {}


def month(srv: SandboxServer, dataset: Dataset, spec: Spec, name: str) -> Month:
    """The month of `spec` under settings `name` (default, fixed 28, off); run once."""
    if (spec, name) not in _months:
        settings = {"default": {}, "fixed 28": FIXED_28, "off": OFF}[name]
        config = month_config(srv, **settings)
        _months[spec, name] = Month(srv, dataset, config, spec.streams).days(spec.days)
    return _months[spec, name]


def mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def figures(srv: SandboxServer, dataset: Dataset, spec: Spec) -> dict[str, dict[str, Any]]:
    """Each month's rows off, records re-sent and requests; printed (see them with -s)."""
    found: dict[str, dict[str, Any]] = {}
    # "off" shows the problem exists (rows off without the check): the quick month is enough.
    names = ("default", "fixed 28", "off") if spec == QUICK else ("default", "fixed 28")
    for name in names:
        m = month(srv, dataset, spec, name)
        asked = {k: m.per_sync(k) for k in (*spec.streams, CHECK)}
        found[name] = {
            "off": {s: len(m.off(s)) for s in spec.streams},
            "resent": sum(m.resent.values()),
            "requests": asked,
        }
        per = {k: f"mean {mean(v):.2f} max {max(v)}" for k, v in asked.items()}
        print(
            f"\n{spec.days} daily syncs, {name}: rows off {found[name]['off']}, records re-sent "
            f"{found[name]['resent']:,} {dict(m.resent)}, report requests per daily sync {per}"
        )
    default = month(srv, dataset, spec, "default")
    fewest = {s: mean([d.fewest[s] for d in default.dailies]) for s in spec.streams}
    ratio = found["default"]["resent"] / found["fixed 28"]["resent"]
    print(
        f"re-sent, default / fixed 28-day re-read: {ratio:.2f}x; fewest requests a daily "
        f"sync could make, mean: {fewest}"
    )
    return found


def assert_month(srv: SandboxServer, dataset: Dataset, spec: Spec) -> None:
    """Issue #24's bars for a month of `spec`."""
    found = figures(srv, dataset, spec)
    default = month(srv, dataset, spec, "default")
    for stream in spec.streams:
        wrong = default.off(stream)
        assert not wrong, f"{stream}: {len(wrong)} rows off, e.g. {wrong[:5]}"
    if "off" in found:
        assert sum(found["off"]["off"].values()) > 0, "restatement_days 0 left no row off"
    assert found["default"]["resent"] <= 0.8 * found["fixed 28"]["resent"]
    for n, daily in enumerate(default.dailies, 1):
        for stream in spec.streams:
            assert daily.reread[stream] == daily.changed[stream], (n, stream)
            assert daily.requests[stream] == daily.fewest[stream], (n, stream, daily)
        assert daily.requests[CHECK] <= 4, (n, daily.requests)
    if spec.days >= 30:  # over 10 days of this data the fewest itself averages 2.1
        for stream in spec.streams:
            assert mean(found["default"]["requests"][stream]) <= 2, stream
    entry = default.state[STATE_KEY]
    assert set(entry) == {"default"}
    assert len(json.dumps(entry["default"])) < 2048, entry


def test_ten_daily_syncs_of_one_stream_end_equal_to_the_truth(
    srv: SandboxServer, dataset: Dataset
) -> None:
    assert_month(srv, dataset, QUICK)


@pytest.mark.slow
def test_a_month_of_daily_syncs_of_three_streams_ends_equal_to_the_truth(
    srv: SandboxServer, dataset: Dataset
) -> None:
    assert_month(srv, dataset, FULL)


# --- a kill during a re-read, settings, accounts, off ----------------------------------


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def first_record_before(result: SyncResult, stream: str, first: date) -> int:
    """The index of `stream`'s first record of a day before `first` (a restated day)."""
    return next(
        n
        for n, m in enumerate(result.messages)
        if m.get("type") == "RECORD"
        and m["stream"] == stream
        and date.fromisoformat(m["record"]["day"]) < first
    )


@pytest.mark.parametrize("cut_in", ["first stream", "second stream"])
def test_killed_during_a_reread_the_resumed_sync_ends_equal_to_the_truth(
    srv: SandboxServer, dataset: Dataset, cut_in: str
) -> None:
    """Output cut inside a restated window, resumed from the last STATE before the cut.

    The kept prints only change once every report stream is done: the STATE before the
    cut carries the old ones, so the resumed sync reads the restated days again.
    """
    streams = ("campaign_report", "offer_report")
    m = Month(srv, dataset, month_config(srv), streams)
    m.sync(FIRST_NOW)
    old, now = m.state, FIRST_NOW + timedelta(days=2)
    whole = m.run(now)
    changed = changed_days(srv, dataset, FIRST_NOW, now)
    order = list(dict.fromkeys(x["stream"] for x in whole.messages if x.get("type") == "RECORD"))
    stream = order[0 if cut_in == "first stream" else 1]
    restated = {
        s: sorted(d for d in changed if d < normal_start(old, s, m.config)) for s in streams
    }
    assert restated[stream], "no day restated: nothing to cut"
    cut = first_record_before(whole, stream, normal_start(old, stream, m.config)) + 1
    m.take(whole, now, messages=cut)
    assert m.state[STATE_KEY] == old[STATE_KEY], "prints kept before every stream was done"
    resumed = m.run(now)
    for s in streams:
        again = {date.fromisoformat(r["day"]) for r in resumed.records[s]}
        first = normal_start(m.state, s, m.config)
        assert sorted(d for d in again if d < first) == sorted(d for d in changed if d < first), s
    m.take(resumed, now)
    for s in streams:
        wrong = m.off(s)
        assert not wrong, f"{s}: {len(wrong)} rows off, e.g. {wrong[:5]}"
    assert m.state[STATE_KEY] == whole.final_state[STATE_KEY]
    assert m.state[STATE_KEY] != old[STATE_KEY]


@pytest.mark.parametrize(("setting", "value"), [("currency", "EUR"), ("timezone", "Europe/Warsaw")])
def test_a_settings_change_starts_the_prints_afresh(
    srv: SandboxServer, dataset: Dataset, caplog: pytest.LogCaptureFixture, setting: str, value: str
) -> None:
    caplog.set_level(logging.INFO)
    m = Month(srv, dataset, month_config(srv), ("campaign_report",))
    m.sync(FIRST_NOW)
    before = m.state[STATE_KEY]["default"]
    m.config[setting] = value
    caplog.clear()
    now = FIRST_NOW + timedelta(days=1)
    m.sync(now)
    first, last = reach_at(now, m.config["timezone"])
    line = (
        f"{setting} changed since the last fingerprints; fingerprinting {first} .. {last} "
        "for the next sync"
    )
    assert line in said(caplog)
    entry = m.state[STATE_KEY]["default"]
    assert before["stamp"][setting] != value
    assert entry["stamp"] == {**before["stamp"], setting: value}
    caplog.clear()
    m.sync(now + timedelta(days=1))
    assert not [x for x in said(caplog) if "fingerprints" in x], "afresh again"
    assert [x for x in said(caplog) if "past day" in x and "changed since the last sync" in x]
    if setting == "currency":
        wrong = m.off("campaign_report")
        assert not wrong, f"{len(wrong)} rows off in EUR, e.g. {wrong[:5]}"


NAMES = ("north", "south")


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    return [
        Dataset(seed=seed, start=DATA_START, days=DATA_DAYS, campaigns=4, restatements=True)
        for seed in (41, 42)
    ]


@pytest.fixture(scope="module")
def agency(datasets: list[Dataset]) -> Iterator[SandboxServer]:
    with SandboxServer(accounts=datasets, rate_limit=None, now=FIRST_NOW) as server:
        yield server


def test_several_accounts_keep_their_own_prints_and_restated_days(
    agency: SandboxServer, datasets: list[Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = month_config(agency)
    del config["access_id"], config["access_key"]
    config["accounts"] = [
        {"name": name, "access_id": a.access_id, "access_key": a.access_key}
        for name, a in zip(NAMES, agency.accounts, strict=True)
    ]
    stream = "campaign_report"
    m = Month(agency, datasets[0], config, (stream,))
    m.sync(FIRST_NOW)
    old = m.state
    caplog.clear()
    now = FIRST_NOW + timedelta(days=3)
    result = m.run(now)
    m.take(result, now)
    entry = m.state[STATE_KEY]
    assert set(entry) == set(NAMES)
    assert entry["north"]["prints"] != entry["south"]["prints"]
    for n, (name, ds) in enumerate(zip(NAMES, datasets, strict=True)):
        changed = changed_days(agency, ds, FIRST_NOW, now)
        assert changed, name
        found = [x for x in said(caplog) if x.startswith(f"{name}: ") and "past day" in x]
        assert len(found) == 1 and found[0].startswith(f"{name}: {len(changed)} past day"), found
        first = normal_start(old, stream, config, name)
        days = {
            date.fromisoformat(r["day"]) for r in result.records[stream] if r["account"] == name
        }
        assert sorted(d for d in days if d < first) == sorted(d for d in changed if d < first)
        checks = [
            r
            for r in agency.requests
            if r["path"] == "/report"
            and r["account"] == n
            and stream_of(r["query"]["groupBy"]) == CHECK
        ]
        assert 1 <= len(checks) <= 4, name
        assert len(json.dumps(entry[name])) < 2048
        wrong = m.off(stream, name, ds)
        assert not wrong, f"{name}: {len(wrong)} rows off, e.g. {wrong[:5]}"


def test_restatement_days_0_checks_nothing_and_keeps_no_prints(
    srv: SandboxServer, dataset: Dataset
) -> None:
    streams = ("campaign_report", "offer_report")
    m = Month(srv, dataset, month_config(srv, restatement_days=0), streams)
    first_sync = m.run(FIRST_NOW)
    reports = [r for r in srv.requests if r["path"] == "/report"]
    assert reports and not [r for r in reports if stream_of(r["query"]["groupBy"]) == CHECK]
    m.take(first_sync, FIRST_NOW)
    now = FIRST_NOW + timedelta(days=3)
    second = m.sync(now)
    assert m.dailies[0].requests[CHECK] == 0
    for result in (first_sync, second):
        assert not [s for s in result.states if s.get(STATE_KEY)], "prints kept"
    for stream in streams:
        assert m.dailies[0].changed[stream] == [] and m.dailies[0].reread[stream] == []
        days = {date.fromisoformat(r["day"]) for r in second.records[stream]}
        start = normal_start(first_sync.final_state, stream, m.config)
        span = (end_day(now) - start).days + 1
        assert days == {start + timedelta(days=n) for n in range(span)}, stream


def test_a_stream_left_out_of_one_sync_still_reads_the_days_restated_meanwhile(
    srv: SandboxServer, dataset: Dataset
) -> None:
    both = ("campaign_report", "offer_report")
    m = Month(srv, dataset, month_config(srv), both)
    m.sync(FIRST_NOW)
    now = FIRST_NOW + timedelta(days=3)
    m.streams = ("campaign_report",)  # a sync of one stream, from the same state
    m.sync(now)
    assert "offer_report" in m.state["bookmarks"]
    assert changed_days(srv, dataset, FIRST_NOW, now)
    m.streams = both
    m.sync(now + timedelta(days=1))
    for stream in both:
        wrong = m.off(stream)
        assert not wrong, f"{stream}: {len(wrong)} rows off, e.g. {wrong[:5]}"
    assert "owed" not in m.state[STATE_KEY]["default"], "the days owed were read and let go"
