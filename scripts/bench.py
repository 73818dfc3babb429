"""Benchmark tap-voluum against the sandbox: four figures, one run, JSON + a Markdown table.

    .venv/bin/python scripts/bench.py                 # full run (about 5 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick         # every case shrunk: a smoke run
    .venv/bin/python scripts/bench.py --json out.json # JSON elsewhere (default benchmarks/latest.json)

Each case starts its own sandbox (`python -m voluum_sandbox`, a process of its own) and runs
each tap as a process of its own, stdout into a pipe (or a file when records are checked):

1. throughput: `campaign_hourly_report` over 91 days (~205k rows) read by tap-voluum asked for
   one 91-day window (`report_window_days: 91`) and by the plain singer-sdk tap
   (`scripts/baseline_tap.py`, the whole range in one query), alternately, best of 2.
   Records/s = records / wall time of the process (start to exit). Ratio = tap / baseline.
2. memory: peak RSS (wait4 `ru_maxrss`) of tap-voluum reading ~1M rows of a custom report
   (campaign x custom-variable-1 x day, 5 days), default settings.
3. budget: the six daily reports x 60 days, `report_window_days: 1`, sandbox latency 0.5 s and
   limit 15/s. Share of the budget = report requests / ((last answer - first request) x 15);
   the busiest 1-s window (per token) and the 429s from the sandbox's request log.
4. backfill: a 122-day first sync of every report stream (six daily reports,
   `campaign_hourly_report`, `conversions`), default settings, latency 0.3 s. Requests to the
   report endpoints (request log) against the fewest that carry the same rows: per stream the
   range cut into windows of at most 31 local days, each needing max(1, ceil(rows / 10,000))
   requests, rows from the sandbox's truth (`Dataset.truth_rows`, `conversions_between`).
   The records the tap wrote per stream must equal the truth's rows, or the bench fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(VENV_PY) if VENV_PY.exists() else sys.executable
RATE_LIMIT = 15
MAX_WINDOW_DAYS, MAX_PAGE = 31, 10_000  # the API's widest window and largest useful page
DAILY = {"campaign_report": "campaign", "offer_report": "offer", "lander_report": "lander",
         "flow_report": "flow", "traffic_source_report": "traffic-source",
         "affiliate_network_report": "affiliate-network"}
TRUTH_GROUPS = {**{s: [d, "day"] for s, d in DAILY.items()},
                "campaign_hourly_report": ["campaign", "day", "hour"]}
REPORT_PATHS = ("/report", "/report/conversions")
SEED = 1


@dataclass(frozen=True)
class Case:
    """One figure: its data, the days read (full, quick), the sandbox's knobs, the target."""

    key: str
    title: str
    data: dict[str, int]  # Dataset sizes: campaigns, events_per_campaign_hour, zones
    days: tuple[int, int]
    knobs: dict[str, float]
    target: float
    higher_is_better: bool
    unit: str


CASES = (
    Case("throughput", "Records/s, tap-voluum ÷ baseline",
         {"campaigns": 99, "events_per_campaign_hour": 1, "zones": 40}, (91, 15),
         {"latency": 0.0, "rate_limit": RATE_LIMIT}, 3.5, True, "x"),
    Case("memory", "Peak RSS of the tap, ~1M rows",
         {"campaigns": 225, "events_per_campaign_hour": 100, "zones": 1000}, (5, 1),
         {"latency": 0.0, "rate_limit": RATE_LIMIT}, 150.0, False, " MB"),
    Case("budget", "Budget use, six daily reports",
         {"campaigns": 12, "events_per_campaign_hour": 3, "zones": 40}, (60, 15),
         {"latency": 0.5, "rate_limit": RATE_LIMIT}, 0.85, True, ""),
    Case("backfill", "Backfill requests ÷ fewest",
         {"campaigns": 12, "events_per_campaign_hour": 3, "zones": 40}, (122, 40),
         {"latency": 0.3, "rate_limit": RATE_LIMIT}, 1.25, False, "x"),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the sandbox and the taps, each in a process of its own ----------------------------------


class Sandbox:
    """`python -m voluum_sandbox` in a child process, read through its admin API."""

    def __init__(self, workdir: Path, start: date, days: int, data: dict, knobs: dict) -> None:
        args = [PY, "-m", "voluum_sandbox", "--port", "0", "--seed", str(SEED),
                "--start", str(start), "--days", str(days)]
        for key, value in {**data, **knobs}.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.out = workdir / "sandbox.out"
        with self.out.open("wb") as out, (workdir / "sandbox.err").open("wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=workdir)
        deadline = time.monotonic() + 300
        while "url=" not in self.out.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start: {(workdir / 'sandbox.err').read_text()}")
            time.sleep(0.2)
        info = dict(line.split("=", 1) for line in self.out.read_text().splitlines() if "=" in line)
        self.creds = {"access_id": info["access_id"], "access_key": info["access_key"],
                      "api_url": info["url"]}

    def call(self, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.creds["api_url"] + path, data=data)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("cwauth-token", token)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def report(self, params: dict) -> dict:
        """One `/report` call with a token of its own (untimed: warms the report cache)."""
        login = {"accessId": self.creds["access_id"], "accessKey": self.creds["access_key"]}
        token = self.call("/auth/access/session", login)["token"]
        return self.call("/report?" + urllib.parse.urlencode(params, doseq=True), token=token)

    def requests(self) -> list[dict]:
        return self.call("/__sandbox__/requests")["requests"]

    def computations(self) -> int:
        return int(self.call("/__sandbox__/stats")["report_computations"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Run:
    """One tap process: wall time, records written (per stream when read from a file), RSS."""

    wall: float
    records: int
    max_rss_mb: float
    returncode: int
    per_stream: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.wall if self.wall else 0.0

    def figures(self) -> dict[str, Any]:
        return {"records": self.records, "wall_s": round(self.wall, 2),
                "records_per_s": round(self.rate), "max_rss_mb": round(self.max_rss_mb, 1),
                "exit": self.returncode}


def run_process(args: list[str], workdir: Path, out_file: Path | None = None) -> Run:
    """Run a tap to exit; count RECORD messages on a pipe (or per stream, in `out_file`)."""
    needle, records = b'"RECORD"', 0
    with (workdir / "tap.stderr").open("wb") as err:
        started = time.perf_counter()
        stdout = out_file.open("wb") if out_file else subprocess.PIPE
        proc = subprocess.Popen(args, stdout=stdout, stderr=err, cwd=workdir)
        if proc.stdout is not None:
            tail = b""
            while chunk := os.read(proc.stdout.fileno(), 1 << 20):
                window = tail + chunk
                records += window.count(needle)  # a match across two chunks counted once
                tail = window[-(len(needle) - 1):]
            proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if out_file:
            stdout.close()
    run = Run(wall, records, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
    if out_file:
        run.per_stream = records_per_stream(out_file)
        run.records = sum(run.per_stream.values())
    if run.returncode:
        tail_lines = (workdir / "tap.stderr").read_text(errors="replace").splitlines()[-15:]
        log(f"tap exited {run.returncode}:\n" + "\n".join(tail_lines))
    return run


def records_per_stream(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with path.open("rb") as lines:
        for line in lines:
            if b'"RECORD"' in line:
                message = json.loads(line)
                if message.get("type") == "RECORD":
                    counts[message["stream"]] = counts.get(message["stream"], 0) + 1
    return counts


def run_tap(workdir: Path, config: dict, streams: tuple[str, ...],
            out_file: Path | None = None) -> Run:
    """tap-voluum with a catalog that selects only `streams`."""
    from tap_voluum.tap import TapVoluum

    catalog = TapVoluum(config=config, validate_config=False, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    args = [PY, "-m", "tap_voluum", "--config", "config.json", "--catalog", "catalog.json"]
    return run_process(args, workdir, out_file)


def run_baseline(workdir: Path, config: dict) -> Run:
    (workdir / "baseline.json").write_text(json.dumps(config))
    script = str(ROOT / "scripts" / "baseline_tap.py")
    return run_process([PY, script, "--config", "baseline.json"], workdir)


def dataset(start: date, days: int, case: Case) -> Any:
    """The sandbox's data, built again in this process for its truth helpers."""
    from voluum_sandbox import Dataset

    return Dataset(SEED, start=start, days=days, **case.data)


def tap_config(sandbox: Sandbox, start: date, days: int, **settings: Any) -> dict:
    end = start + timedelta(days=days)
    return {**sandbox.creds, "start_date": f"{start}T00:00:00Z", "end_date": f"{end}T00:00:00Z",
            "timezone": "UTC", **settings}


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def report_log(sandbox: Sandbox, paths: tuple[str, ...]) -> dict[str, Any]:
    """Report requests, their span (first request to last answer), busiest second, 429s."""
    from voluum_sandbox.limits import max_in_window

    entries = sandbox.requests()
    reports = [e for e in entries if e["path"] in paths]
    first = min((e["t"] for e in reports), default=0.0)
    last = max((e["t"] + e.get("duration", 0.0) for e in reports), default=first)
    per_token: dict[str, list[float]] = {}
    for entry in entries:
        if entry["token"]:
            per_token.setdefault(entry["token"], []).append(entry["t"])
    return {"requests": len(reports), "span_s": round(last - first, 2),
            "busiest_1s": max((max_in_window(ts) for ts in per_token.values()), default=0),
            "n429": sum(e["status"] == 429 for e in entries), "entries": reports}


# --- the four cases ------------------------------------------------------------------------


def throughput(sandbox: Sandbox, start: date, days: int, case: Case, workdir: Path,
               repeats: int) -> dict:
    """tap-voluum and the baseline on the same hourly report, alternately; best wall time."""
    ds = dataset(start, days, case)
    rows = len(ds.truth_rows(TRUTH_GROUPS["campaign_hourly_report"], midnight(start),
                             midnight(start + timedelta(days=days)), "UTC", include="ALL"))
    del ds
    config = tap_config(sandbox, start, days)
    sandbox.report({"from": f"{start}T00:00:00", "to": f"{start + timedelta(days=days)}T00:00:00",
                    "tz": "UTC", "groupBy": ["campaign", "day", "hour"], "include": "ALL",
                    "sort": "campaignId", "direction": "ASC", "limit": 1})  # the baseline's
    runs: dict[str, list[Run]] = {"baseline": [], "tap": []}
    computed: dict[str, int] = {"baseline": 0, "tap": 0}
    for _ in range(repeats):
        for name in runs:
            before = sandbox.computations()
            run = (run_baseline(workdir, config) if name == "baseline" else run_tap(
                workdir, {**config, "report_window_days": days}, ("campaign_hourly_report",)))
            computed[name] += sandbox.computations() - before
            runs[name].append(run)
            log(f"{name}: {run.records:,} records in {run.wall:.1f} s = {run.rate:,.0f}/s")
    best = {name: min(found, key=lambda r: r.wall) for name, found in runs.items()}
    ratio = best["tap"].rate / best["baseline"].rate if best["baseline"].rate else 0.0
    ok = all(r.records == rows and not r.returncode for found in runs.values() for r in found)
    return {"value": round(ratio, 2), "rows_truth": rows, "records_ok": ok,
            **{name: {**run.figures(), "report_computations": computed[name],
                      "walls_s": [round(r.wall, 2) for r in runs[name]]}
               for name, run in best.items()}}


def memory(sandbox: Sandbox, start: date, days: int, case: Case, workdir: Path, _: int) -> dict:
    """Peak RSS of tap-voluum reading every row of a large custom report, defaults."""
    report = {"name": "zone_report", "group_by": ["campaign", "custom-variable-1"]}
    run = run_tap(workdir, tap_config(sandbox, start, days, custom_reports=[report]),
                  ("zone_report",))
    log(f"memory: {run.records:,} records, max RSS {run.max_rss_mb:.0f} MB")
    return {"value": round(run.max_rss_mb, 1), "records_ok": run.returncode == 0, **run.figures()}


def budget(sandbox: Sandbox, start: date, days: int, case: Case, workdir: Path, _: int) -> dict:
    """The six daily reports in one sync: share of the request budget used."""
    run = run_tap(workdir, tap_config(sandbox, start, days, report_window_days=1), tuple(DAILY))
    seen = report_log(sandbox, ("/report",))
    seen.pop("entries")
    share = seen["requests"] / (seen["span_s"] * RATE_LIMIT) if seen["span_s"] else 0.0
    log(f"budget: {seen['requests']} requests in {seen['span_s']} s = {share:.1%}, busiest "
        f"{seen['busiest_1s']}, {seen['n429']} x 429")
    return {"value": round(share, 3), "records_ok": run.returncode == 0,
            **seen, **run.figures()}


def fewest_requests(ds: Any, stream: str, start: date, days: int) -> tuple[int, int]:
    """(requests, rows) for the stream in windows of at most 31 days, 10,000 rows a request."""
    requests = rows = 0
    for offset in range(0, days, MAX_WINDOW_DAYS):
        lo = midnight(start + timedelta(days=offset))
        hi = midnight(start + timedelta(days=min(days, offset + MAX_WINDOW_DAYS)))
        if stream == "conversions":
            found = len(ds.conversions_between(lo, hi, "UTC"))
        else:
            found = len(ds.truth_rows(TRUTH_GROUPS[stream], lo, hi, "UTC", include="ALL"))
        requests += max(1, math.ceil(found / MAX_PAGE))
        rows += found
    return requests, rows


def stream_of(entry: dict) -> str:
    """Which stream a logged report request served."""
    if entry["path"] == "/report/conversions":
        return "conversions"
    levels = [g.lower().replace("-", "").replace("_", "") for g in entry["query"].get("groupBy", [])]
    if "hour" in levels:
        return "campaign_hourly_report"
    first = levels[0].removesuffix("id") if levels else "campaign"
    return next((s for s, d in DAILY.items() if d.replace("-", "") == first), first)


def backfill(sandbox: Sandbox, start: date, days: int, case: Case, workdir: Path, _: int) -> dict:
    """A first sync of every report stream with defaults: requests against the fewest."""
    streams = (*DAILY, "campaign_hourly_report", "conversions")
    run = run_tap(workdir, tap_config(sandbox, start, days), streams, workdir / "records.jsonl")
    seen = report_log(sandbox, REPORT_PATHS)
    asked: dict[str, int] = {}
    for entry in seen.pop("entries"):
        asked[stream_of(entry)] = asked.get(stream_of(entry), 0) + 1
    ds = dataset(start, days, case)
    per_stream = {}
    for stream in streams:
        fewest, rows = fewest_requests(ds, stream, start, days)
        per_stream[stream] = {"requests": asked.get(stream, 0), "fewest": fewest,
                              "rows_truth": rows, "records": run.per_stream.get(stream, 0)}
    fewest = sum(s["fewest"] for s in per_stream.values())
    wrong = {s: v for s, v in per_stream.items() if v["records"] != v["rows_truth"]}
    log(f"backfill: {seen['requests']} requests, fewest {fewest}, {run.wall:.1f} s")
    return {"value": round(seen["requests"] / fewest, 2), "fewest": fewest,
            "rows_truth": sum(s["rows_truth"] for s in per_stream.values()),
            "records_ok": not wrong and run.returncode == 0, "records_wrong": sorted(wrong),
            **seen, **run.figures(), "streams": per_stream}


MEASURES: dict[str, Callable[..., dict]] = {
    "throughput": throughput, "memory": memory, "budget": budget, "backfill": backfill}


def run_case(case: Case, quick: bool, root: Path) -> dict:
    days = case.days[quick]
    start = date.today() - timedelta(days=days + 7)  # whole days, all in the past
    workdir = root / case.key
    workdir.mkdir()
    log(f"{case.key}: sandbox of {days} days, {case.data}, {case.knobs}")
    started = time.monotonic()
    sandbox = Sandbox(workdir, start, days, case.data, case.knobs)
    try:
        result = MEASURES[case.key](sandbox, start, days, case, workdir, 1 if quick else 2)
    finally:
        sandbox.stop()
    value = result["value"]
    met = value >= case.target if case.higher_is_better else value <= case.target
    if case.key == "budget":
        met = met and result["busiest_1s"] <= RATE_LIMIT and result["n429"] == 0
    return {"days": days, "target": case.target, **result,
            "pass": bool(met and result["records_ok"]),
            "case_s": round(time.monotonic() - started, 1)}


# --- output --------------------------------------------------------------------------------


def result_text(key: str, r: dict) -> tuple[str, str, str]:
    """(workload, result, target) cells of one figure."""
    if key == "throughput":
        t, b = r["tap"], r["baseline"]
        return (f"`campaign_hourly_report`, {r['days']} days, {r['rows_truth']:,} rows; tap "
                f"`report_window_days: {r['days']}`, baseline one query; best of "
                f"{len(t['walls_s'])}",
                f"**{r['value']:.2f}x**: tap {t['records_per_s']:,} rec/s ({t['wall_s']} s), "
                f"baseline {b['records_per_s']:,} rec/s ({b['wall_s']} s)", "≥ 3.5x")
    if key == "memory":
        return (f"custom report campaign x custom-variable-1 x day, {r['days']} days, defaults",
                f"**{r['value']:.0f} MB** for {r['records']:,} records "
                f"({r['records_per_s']:,} rec/s, {r['wall_s']} s)", "≤ 150 MB")
    if key == "budget":
        return (f"6 daily reports x {r['days']} days, `report_window_days: 1`, latency 0.5 s, "
                f"limit {RATE_LIMIT}/s",
                f"**{r['value']:.1%}**: {r['requests']} requests in {r['span_s']} s "
                f"(wall {r['wall_s']} s), busiest 1-s window {r['busiest_1s']}, "
                f"{r['n429']} x 429", f"≥ 85%, ≤ {RATE_LIMIT}/s, 0 x 429")
    return (f"first sync, {r['days']} days, 6 daily reports + `campaign_hourly_report` + "
            "`conversions`, defaults, latency 0.3 s",
            f"**{r['value']:.2f}x**: {r['requests']} report requests vs fewest {r['fewest']}, "
            f"{r['wall_s']} s, {r['n429']} x 429; {r['records']:,} records = truth's "
            f"{r['rows_truth']:,} rows" + ("" if r["records_ok"] else " **MISMATCH**"),
            "≤ 1.25x, records = truth")


def render(results: dict, meta: dict) -> str:
    lines = [f"## Benchmark ({'quick' if meta['quick'] else 'full'} run, {meta['date']})", "",
             f"{meta['machine']}. tap-voluum {meta['revision']}. Whole run "
             f"{meta['elapsed_s'] / 60:.1f} min. Command: `{meta['command']}`", "",
             "| # | Figure | Workload | Result | Target | |", "|---|---|---|---|---|---|"]
    for n, case in enumerate(CASES, 1):
        r = results[case.key]
        workload, result, target = result_text(case.key, r)
        lines.append(f"| {n} | {case.title} | {workload} | {result} | {target} | "
                     f"{'✅' if r['pass'] else '❌'} |")
    r = results["backfill"]
    lines += ["", "Backfill per stream:", "", "| Stream | Requests | Fewest | Truth rows | Records |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| `{s}` | {v['requests']} | {v['fewest']} | {v['rows_truth']:,} | "
              f"{v['records']:,} |" for s, v in r["streams"].items()]
    return "\n".join(lines) + "\n"


def meta_data(quick: bool) -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain", "tap_voluum") else ""
    return {"date": str(date.today()), "quick": quick,
            "command": ".venv/bin/python scripts/bench.py" + (" --quick" if quick else ""),
            "revision": f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}",
            "machine": f"{len(os.sched_getaffinity(0))} CPUs, Python "
                       f"{platform.python_version()}, singer-sdk {version('singer-sdk')}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrink every case (smoke run)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "latest.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "benchmarks" / "latest.md")
    parser.add_argument("--only", choices=[c.key for c in CASES], action="append",
                        help="run only this case (repeatable); the files are not written")
    args = parser.parse_args()
    started, meta = time.monotonic(), meta_data(args.quick)
    root = Path(tempfile.mkdtemp(prefix="tap-voluum-bench-"))
    try:
        results = {c.key: run_case(c, args.quick, root) for c in CASES
                   if not args.only or c.key in args.only}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    if args.only:
        print(json.dumps(results, indent=1))
        return
    table = render(results, meta)
    print(table)
    for path, text in ((args.json, json.dumps({"meta": meta, **results}, indent=1) + "\n"),
                       (args.markdown, table)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if not results["backfill"]["records_ok"]:
        sys.exit("BENCH FAILED: backfill records differ from the truth's rows: "
                 f"{results['backfill']['records_wrong'] or 'tap exit code'}")


if __name__ == "__main__":
    main()
