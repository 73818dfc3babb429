"""The `restated` case of `scripts/bench.py`: a month of daily syncs against a restating Voluum.

The sandbox (`--restatements 1`) plays a Voluum whose past days change: late postbacks, uploads,
imported and manual cost. A first sync at a simulated now, then one sync a day at 03:00 UTC,
each a tap process of its own from the last STATE, the sandbox clock (admin API) and `end_date`
moved together; every record upserted by primary key, as a target would. Twice: default
settings, and a fixed 28-day re-read (`restatement_days: 0, lookback_days: 28`). Figures: rows
unlike the sandbox's truth at the end (every day in the check's 90 days), records re-sent after
the first sync, and `/report` requests per daily sync (per stream; the check's: groupBy=day).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DATA_DAYS, REACH, START_BACK = 120, 90, 100  # data; the check's days; start_date's days back
STREAMS = {"campaign_report": ["campaign", "day"], "offer_report": ["offer", "day"],
           "campaign_hourly_report": ["campaign", "day", "hour"]}
ID_FIELD = {"campaign": "campaignId", "offer": "offerId"}
SETTINGS = {"default": {}, "fixed28": {"restatement_days": 0, "lookback_days": 28}}
CHECK = "check"
SANDBOX_ARGS = ("--restatements", "1")


def stream_of(group_by: list[str]) -> str:
    """Which stream a `/report` request served (`CHECK`: grouped by day alone)."""
    levels = [g.lower().replace("-", "").replace("_", "").removesuffix("id") for g in group_by]
    if levels == ["day"]:
        return CHECK
    return "campaign_hourly_report" if "hour" in levels else f"{levels[0]}_report"


@dataclass
class Month:
    """One month's upserted tables, records re-sent and requests per daily sync."""

    tables: dict[str, dict[tuple, dict]] = field(default_factory=lambda: defaultdict(dict))
    resent: Counter[str] = field(default_factory=Counter)
    requests: list[Counter[str]] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)


def sync(ctx: Any, config: dict, state: dict | None, month: Month, first: bool) -> dict | None:
    """One tap process from `state`; its records upserted; its last STATE returned."""
    work: Path = ctx.workdir
    (work / "config.json").write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_voluum", "--config", "config.json", "--catalog",
            "catalog.json"]
    if state:
        (work / "state.json").write_text(json.dumps(state))
        args += ["--state", "state.json"]
    with (work / "out.jsonl").open("wb") as out, (work / "tap.stderr").open("wb") as err:
        done = subprocess.run(args, stdout=out, stderr=err, cwd=work, check=False)
    month.exits.append(done.returncode)
    keys: dict[str, list[str]] = {}
    with (work / "out.jsonl").open("rb") as lines:
        for line in lines:
            message = json.loads(line, parse_float=Decimal)
            kind = message.get("type")
            if kind == "SCHEMA":
                keys[message["stream"]] = message["key_properties"]
            elif kind == "RECORD":
                name, record = message["stream"], message["record"]
                month.tables[name][tuple(record[k] for k in keys[name])] = record
                month.resent[name] += 0 if first else 1
            elif kind == "STATE":
                state = message["value"]
    return state


def run_month(ctx: Any, settings: dict, first_now: datetime, start_date: date) -> Month:
    """A first sync at `first_now`, then `ctx.days` daily syncs, each from the last STATE."""
    from tap_voluum.tap import TapVoluum

    config = {**ctx.sandbox.creds, "start_date": f"{start_date.isoformat()}T00:00:00Z",
              "timezone": "UTC", **settings}
    catalog = TapVoluum(config=config, validate_config=False, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in STREAMS
    (ctx.workdir / "catalog.json").write_text(json.dumps(catalog))
    month, state = Month(), None
    for n in range(ctx.days + 1):
        now = first_now + timedelta(days=n)
        ctx.sandbox.call("/__sandbox__/configure", {"now": f"{now.isoformat()}Z"})
        ctx.sandbox.call("/__sandbox__/clear", {})
        state = sync(ctx, {**config, "end_date": f"{now.isoformat()}Z"}, state, month, n == 0)
        if n:
            log = ctx.sandbox.call("/__sandbox__/requests")["requests"]
            month.requests.append(Counter(stream_of(e["query"]["groupBy"]) for e in log
                                          if e["path"] == "/report"))
    return month


def cents(value: Any) -> int:
    return int((Decimal(str(value or 0)) * 100).to_integral_value())


def rows_off(month: Month, ds: Any, stream: str, first: date, end: datetime) -> int:
    """Rows of `stream` over `first .. end` missing, extra or unlike the truth."""
    truth = ds.truth_rows(STREAMS[stream], datetime.combine(first, time()), end, "UTC",
                          include="ALL")
    dims = STREAMS[stream]
    got = {}
    for r in month.tables[stream].values():
        if first <= date.fromisoformat(r["day"]) <= end.date():
            key = (r[ID_FIELD[dims[0]]], r["day"], *([r["hour"]] if "hour" in dims else []))
            got[key] = r
    off = len(truth.keys() ^ got.keys())
    for key in truth.keys() & got.keys():
        row, want = got[key], truth[key]
        if any(row[f] != want[f] for f in ("visits", "clicks", "conversions")) or any(
            cents(row[m]) != want[f"{m}_cents"] for m in ("revenue", "cost")
        ):
            off += 1
    return off


def figures(month: Month, ds: Any, first: date, end: datetime) -> dict[str, Any]:
    """Rows off, records re-sent and requests per daily sync of one month."""
    keys = (*STREAMS, CHECK)
    per = {k: [asked.get(k, 0) for asked in month.requests] for k in keys}
    return {"rows_off": sum(rows_off(month, ds, s, first, end) for s in STREAMS),
            "rows_off_per_stream": {s: rows_off(month, ds, s, first, end) for s in STREAMS},
            "resent": sum(month.resent.values()), "resent_per_stream": dict(month.resent),
            "requests_mean": {k: round(sum(v) / len(v), 2) for k, v in per.items()},
            "requests_max": {k: max(v) for k, v in per.items()},
            "exits_ok": not any(month.exits)}


def restated(ctx: Any, seed: int, log: Callable[[str], None]) -> dict:
    """Default settings vs the fixed 28-day re-read, `ctx.days` daily syncs each."""
    from voluum_sandbox import Dataset

    last_now = datetime.combine(ctx.start + timedelta(days=DATA_DAYS - 1), time(3))
    first_now = last_now - timedelta(days=ctx.days)
    start_date = last_now.date() - timedelta(days=START_BACK)
    ds = Dataset(seed, start=ctx.start, days=DATA_DAYS, restatements=1.0,
                 **ctx.case.data)
    ds.set_now(last_now)
    reach_first = max(last_now.date() - timedelta(days=REACH - 1), start_date)
    found = {}
    for name, settings in SETTINGS.items():
        month = run_month(ctx, settings, first_now, start_date)
        found[name] = figures(month, ds, reach_first, last_now)
        log(f"restated, {name}: {found[name]}")
    default, fixed = found["default"], found["fixed28"]
    ratio = default["resent"] / fixed["resent"] if fixed["resent"] else 0.0
    requests = ", ".join(f"`{k}` {v} (max {default['requests_max'][k]})"
                         for k, v in default["requests_mean"].items())
    return {"value": round(ratio, 2), "syncs": ctx.days, "streams": ", ".join(STREAMS),
            "requests_text": requests, "default": default, "fixed28": fixed,
            "limits_ok": all(v <= (4 if k == CHECK else 2)
                             for k, v in default["requests_mean"].items()),
            "records_ok": default["rows_off"] == 0 and default["exits_ok"] and fixed["exits_ok"]}
