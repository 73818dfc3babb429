"""Benchmark tap-voluum against the sandbox: five figures in one run, JSON + a Markdown table.

    .venv/bin/python scripts/bench.py [--quick] [--json PATH]

Each case starts its own sandbox (`python -m voluum_sandbox`) and runs each tap as a process of
its own, stdout into a pipe (into a file when records are checked per stream):
1. records/s (records / process wall time, best of 2, alternately) of tap-voluum and of the plain
   singer-sdk tap `scripts/baseline_tap.py` on `campaign_hourly_report`, 91 days, ~205k rows;
2. peak RSS of tap-voluum reading ~1M rows with default settings (LAUNCH below);
3. six daily reports x 60 days, 0.5 s latency: report requests / ((last answer - first request)
   x 15), the busiest 1-s window and the 429s of the sandbox's request log;
4. a 122-day first sync of every report stream, defaults, 0.3 s latency: report requests / the
   fewest that carry the rows (windows of at most 31 days, max(1, ceil(rows / 10,000)) requests
   each, rows from the sandbox's `Dataset` truth); records per stream must equal the truth's;
5. `restated` (scripts/bench_restated.py): a first sync + 30 daily syncs (10 with --quick) of
   campaign_report, offer_report and campaign_hourly_report against a sandbox that restates its
   past, upserted by key: defaults vs a fixed 28-day re-read (`restatement_days: 0`,
   `lookback_days: 28`). Records re-sent / the fixed re-read's (<= 0.8x), rows unlike the truth
   at the end over the check's 90 days (0 with defaults, else exit 1), `/report` requests per
   daily sync per stream (<= 2 on average) and the check's (<= 4).
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_restated import SANDBOX_ARGS, restated

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable  # the sandbox and the taps run on this script's interpreter (the venv's)
SEED, RATE_LIMIT = 1, 15
MAX_WINDOW_DAYS, MAX_PAGE = 31, 10_000  # the API's widest window and largest page it serves
DAILY = {"campaign_report": "campaign", "offer_report": "offer", "lander_report": "lander",
         "flow_report": "flow", "traffic_source_report": "traffic-source",
         "affiliate_network_report": "affiliate-network"}
TRUTH_GROUPS = {**{s: [d, "day"] for s, d in DAILY.items()},
                "campaign_hourly_report": ["campaign", "day", "hour"]}
STREAM_OF_GROUP = {d.replace("-", ""): s for s, d in DAILY.items()}  # "trafficsource": ...
BACKFILL_STREAMS = (*DAILY, "campaign_hourly_report", "conversions")
# A process exec'd by a fork (or vfork) of this one starts with this one's peak RSS as its own
# (Linux keeps the high-water mark across exec): a small launcher forks the tap and reports it.
LAUNCH = ("import os, sys\npid = os.fork()\nif not pid: os.execv(sys.argv[2], sys.argv[2:])\n"
          "_, status, usage = os.wait4(pid, 0)\nopen(sys.argv[1], 'w').write(str(usage.ru_maxrss))"
          "\nsys.exit(os.waitstatus_to_exitcode(status))")
ACCOUNT = {"campaigns": 12, "events_per_campaign_hour": 3, "zones": 40}  # sandbox defaults


@dataclass(frozen=True)
class Case:
    """One figure: data, days read (full, --quick), latency, target, its table cells."""

    key: str
    title: str
    data: dict[str, int]  # Dataset sizes: campaigns, events_per_campaign_hour, zones
    days: tuple[int, int]
    latency: float
    target: float
    at_least: bool  # the figure must be >= target (else <=)
    workload: str  # str.format templates over the case's results
    result: str
    target_text: str
    sandbox_args: tuple[str, ...] = ()
    data_days: int = 0  # days of data, when not the days read


CASES = (
    Case("throughput", "Records/s, tap-voluum ÷ baseline",
         {"campaigns": 99, "events_per_campaign_hour": 1, "zones": 40}, (91, 15), 0.0, 3.5, True,
         "`campaign_hourly_report`, {days} days = {rows_truth:,} rows; tap asked for "
         "`report_window_days: {days}`, baseline one query; best of {repeats}",
         "**{value:.2f}x**: tap {tap[records_per_s]:,} rec/s ({tap[wall_s]} s), baseline "
         "{baseline[records_per_s]:,} rec/s ({baseline[wall_s]} s)", "≥ 3.5x"),
    Case("memory", "Peak RSS of the tap, defaults",
         {"campaigns": 225, "events_per_campaign_hour": 100, "zones": 1000}, (5, 1), 0.0, 150,
         False, "custom report campaign x custom-variable-1 x day, {days} days, defaults",
         "**{value:.0f} MB**, {records:,} records ({records_per_s:,} rec/s, {wall_s} s)",
         "≤ 150 MB"),
    Case("budget", "Budget use, six daily reports", ACCOUNT, (60, 15), 0.5, 0.85, True,
         "6 daily reports x {days} days, `report_window_days: 1`, latency 0.5 s, limit 15/s",
         "**{value:.1%}**: {requests} requests in {span_s} s (tap wall {wall_s} s), busiest "
         "1-s window {busiest_1s}, {n429} x 429", "≥ 85%, ≤ 15/s, 0 x 429"),
    Case("backfill", "Backfill requests ÷ fewest", ACCOUNT, (122, 40), 0.3, 1.25, False,
         "first sync, {days} days, 6 daily reports + `campaign_hourly_report` + `conversions`, "
         "defaults, latency 0.3 s",
         "**{value:.2f}x**: {requests} report requests vs fewest {fewest}, {wall_s} s, {n429} x "
         "429; {records:,} records (truth: {rows_truth:,} rows)", "≤ 1.25x, records = truth"),
    Case("restated", "Restated days: records re-sent ÷ a fixed 28-day re-read", ACCOUNT, (30, 10),
         0.0, 0.8, False, "a first sync + {syncs} daily syncs upserted, sandbox restating its "
         "past; {streams}; defaults vs `restatement_days: 0, lookback_days: 28`",
         "**{value:.2f}x**: {default[resent]:,} vs {fixed28[resent]:,} records re-sent; rows off "
         "{default[rows_off]} vs {fixed28[rows_off]}; report requests per daily sync, mean: "
         "{requests_text}", "≤ 0.8x, 0 rows off, ≤ 2 req./stream, ≤ 4 check",
         SANDBOX_ARGS, 120),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Sandbox:
    """`python -m voluum_sandbox` in a child process, read through its admin API."""

    def __init__(self, workdir: Path, start: date, days: int, case: Case) -> None:
        args = [PY, "-m", "voluum_sandbox", "--port", "0", "--seed", str(SEED), "--start",
                str(start), "--days", str(case.data_days or days), "--latency",
                str(case.latency), "--rate-limit", str(RATE_LIMIT), *case.sandbox_args]
        args += [a for k, v in case.data.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        out, err = workdir / "sandbox.out", workdir / "sandbox.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, cwd=workdir)
        while "url=" not in out.read_text():  # it prints its url once the data is built
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox did not start: {err.read_text()[-2000:]}")
            time.sleep(0.2)
        info = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        self.creds = {"access_id": info["access_id"], "access_key": info["access_key"],
                      "api_url": info["url"]}

    def call(self, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **({"cwauth-token": token} if token else {})}
        request = urllib.request.Request(self.creds["api_url"] + path, data, headers)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def report(self, params: dict) -> dict:  # with a token of its own
        login = {"accessId": self.creds["access_id"], "accessKey": self.creds["access_key"]}
        token = self.call("/auth/access/session", login)["token"]
        return self.call("/report?" + urllib.parse.urlencode(params, doseq=True), token=token)

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        self.proc.kill()  # a no-op once it has exited


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
    """Run a tap to its exit; count RECORD messages on a pipe (or per stream in `out_file`)."""
    needle, records, tail = b'"RECORD"', 0, b""
    stdout: Any = out_file.open("wb") if out_file else subprocess.PIPE  # a file or the pipe
    with (workdir / "tap.stderr").open("wb") as err:
        started = time.perf_counter()
        launch = [PY, "-c", LAUNCH, str(workdir / "rss"), *args]
        proc = subprocess.Popen(launch, stdout=stdout, stderr=err, cwd=workdir)
        while proc.stdout and (chunk := os.read(proc.stdout.fileno(), 1 << 20)):
            window = tail + chunk
            records += window.count(needle)  # a match across two chunks is counted once
            tail = window[-(len(needle) - 1) :]
        proc.wait()
        wall = time.perf_counter() - started
    (proc.stdout or stdout).close()
    run = Run(wall, records, int((workdir / "rss").read_text()) / 1024, proc.returncode)
    if out_file:  # every RECORD line of the file, by stream
        with out_file.open("rb") as lines:
            messages = (json.loads(line) for line in lines if b'"RECORD"' in line)
            run.per_stream = Counter(m["stream"] for m in messages if m["type"] == "RECORD")
        run.records = sum(run.per_stream.values())
    if run.returncode:
        log(f"tap exited {run.returncode}:\n{(workdir / 'tap.stderr').read_text()[-3000:]}")
    return run


def run_tap(workdir: Path, config: dict, streams: tuple[str, ...], out: Path | None = None) -> Run:
    """tap-voluum with a catalog (discovered here) that selects only `streams`."""
    from tap_voluum.tap import TapVoluum

    catalog = TapVoluum(config=config, validate_config=False, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    args = [PY, "-m", "tap_voluum", "--config", "config.json", "--catalog", "catalog.json"]
    return run_process(args, workdir, out)


def run_baseline(workdir: Path, config: dict) -> Run:
    (workdir / "base.json").write_text(json.dumps(config))
    return run_process([PY, f"{ROOT}/scripts/baseline_tap.py", "--config", "base.json"], workdir)


@dataclass
class Ctx:
    """What a case's measure works with."""

    case: Case
    sandbox: Sandbox
    start: date
    days: int
    workdir: Path
    repeats: int

    def config(self, **settings: Any) -> dict:
        return {**self.sandbox.creds, "start_date": f"{self.at(0).isoformat()}Z",
                "end_date": f"{self.at(self.days).isoformat()}Z", "timezone": "UTC", **settings}

    def at(self, days: int) -> datetime:
        """Local midnight `days` after the first day read (the truth helpers' wall clock)."""
        return datetime.combine(self.start + timedelta(days=days), datetime.min.time())

    def dataset(self) -> Any:
        """The sandbox's data, built again in this process for its truth helpers."""
        from voluum_sandbox import Dataset

        return Dataset(SEED, start=self.start, days=self.days, **self.case.data)


def report_log(sandbox: Sandbox, paths: tuple[str, ...]) -> tuple[dict[str, Any], list[dict]]:
    """Report requests, their span (first request to last answer), busiest second, 429s."""
    reports = [e for e in sandbox.call("/__sandbox__/requests")["requests"] if e["path"] in paths]
    first = min((e["t"] for e in reports), default=0.0)
    last = max((e["t"] + e.get("duration", 0.0) for e in reports), default=first)
    stats = sandbox.call("/__sandbox__/stats")  # figures of the whole request log
    return {"requests": len(reports), "span_s": round(last - first, 2),
            "busiest_1s": max(stats["max_per_second"].values(), default=0),
            "n429": int(stats["by_status"].get("429", 0))}, reports


def throughput(ctx: Ctx) -> dict:
    """tap-voluum and the baseline on the same hourly report, alternately; best wall time."""
    rows = len(ctx.dataset().truth_rows(TRUTH_GROUPS["campaign_hourly_report"], ctx.at(0),
                                        ctx.at(ctx.days), "UTC", include="ALL"))
    ctx.sandbox.report({"from": ctx.at(0).isoformat(), "to": ctx.at(ctx.days).isoformat(),
                        "tz": "UTC", "groupBy": ["campaign", "day", "hour"], "include": "ALL",
                        "sort": "campaignId", "direction": "ASC", "limit": 1})  # the baseline's
    config = ctx.config()
    takers = {"baseline": lambda: run_baseline(ctx.workdir, config),
              "tap": lambda: run_tap(ctx.workdir, {**config, "report_window_days": ctx.days},
                                     ("campaign_hourly_report",))}
    runs: dict[str, list[Run]] = {name: [] for name in takers}
    for _ in range(ctx.repeats):  # alternately, so that both meet the same noise
        for name, take in takers.items():
            runs[name].append(run := take())
            log(f"{name}: {run.records:,} records in {run.wall:.1f} s = {run.rate:,.0f}/s")
    best = {name: min(found, key=lambda r: r.wall) for name, found in runs.items()}
    ratio = best["tap"].rate / best["baseline"].rate if best["baseline"].rate else 0.0
    ok = all(r.records == rows and not r.returncode for found in runs.values() for r in found)
    return {"value": round(ratio, 2), "rows_truth": rows, "records_ok": ok, "repeats": ctx.repeats,
            **{name: {**run.figures(), "walls_s": [round(r.wall, 2) for r in runs[name]]}
               for name, run in best.items()}}


def memory(ctx: Ctx) -> dict:
    """Peak RSS of tap-voluum reading every row of a large custom report, defaults."""
    report = {"name": "zone_report", "group_by": ["campaign", "custom-variable-1"]}
    run = run_tap(ctx.workdir, ctx.config(custom_reports=[report]), ("zone_report",))
    return {"value": round(run.max_rss_mb, 1), "records_ok": run.returncode == 0, **run.figures()}


def budget(ctx: Ctx) -> dict:
    """The six daily reports in one sync: share of the request budget used."""
    run = run_tap(ctx.workdir, ctx.config(report_window_days=1), tuple(DAILY))
    seen, _ = report_log(ctx.sandbox, ("/report",))
    share = seen["requests"] / (seen["span_s"] * RATE_LIMIT) if seen["span_s"] else 0.0
    log(f"budget: {share:.1%} of the budget, {seen}")
    seen["limits_ok"] = seen["busiest_1s"] <= RATE_LIMIT and seen["n429"] == 0
    return {"value": round(share, 3), "records_ok": run.returncode == 0, **seen, **run.figures()}


def fewest_requests(ctx: Ctx, ds: Any, stream: str) -> tuple[int, int]:
    """(requests, rows) of the stream in windows of at most 31 days, 10,000 rows a request."""
    requests = rows = 0
    for offset in range(0, ctx.days, MAX_WINDOW_DAYS):
        lo, hi = ctx.at(offset), ctx.at(min(ctx.days, offset + MAX_WINDOW_DAYS))
        found = len(ds.conversions_between(lo, hi, "UTC") if stream == "conversions" else
                    ds.truth_rows(TRUTH_GROUPS[stream], lo, hi, "UTC", include="ALL"))
        requests += max(1, math.ceil(found / MAX_PAGE))
        rows += found
    return requests, rows


def stream_of(entry: dict) -> str:
    """Which stream a logged report request served (any groupBy spelling)."""
    if entry["path"] == "/report/conversions":
        return "conversions"
    levels = [g.lower().replace("-", "").replace("_", "") for g in entry["query"]["groupBy"]]
    if "hour" in levels:
        return "campaign_hourly_report"
    return STREAM_OF_GROUP.get(levels[0].removesuffix("id"), levels[0])


def backfill(ctx: Ctx) -> dict:
    """A first sync of every report stream with defaults: requests against the fewest."""
    run = run_tap(ctx.workdir, ctx.config(), BACKFILL_STREAMS, ctx.workdir / "records.jsonl")
    seen, entries = report_log(ctx.sandbox, ("/report", "/report/conversions"))
    asked = Counter(stream_of(entry) for entry in entries)
    ds, streams = ctx.dataset(), {}
    for name in BACKFILL_STREAMS:
        fewest, rows = fewest_requests(ctx, ds, name)
        streams[name] = {"requests": asked.get(name, 0), "fewest": fewest, "rows_truth": rows,
                         "records": run.per_stream.get(name, 0)}
    fewest = sum(s["fewest"] for s in streams.values())
    wrong = sorted(s for s, v in streams.items() if v["records"] != v["rows_truth"])
    log(f"backfill: {seen['requests']} requests, fewest {fewest}, {run.wall:.1f} s")
    return {"value": round(seen["requests"] / fewest, 2), "fewest": fewest,
            "rows_truth": sum(s["rows_truth"] for s in streams.values()),
            "records_ok": not wrong and run.returncode == 0, "records_wrong": wrong,
            **seen, **run.figures(), "streams": streams}


def run_case(case: Case, quick: bool, root: Path) -> dict:
    days, repeats = case.days[quick], 1 if quick else 2
    start = date.today() - timedelta(days=(case.data_days or days) + 7)  # all in the past
    (workdir := root / case.key).mkdir()
    log(f"{case.key}: sandbox of {case.data_days or days} days, {case.data}, {case.latency} s")
    started, sandbox = time.monotonic(), Sandbox(workdir, start, days, case)
    try:
        measure = {"throughput": throughput, "memory": memory, "budget": budget,
                   "backfill": backfill, "restated": lambda c: restated(c, SEED, log)}[case.key]
        result = measure(Ctx(case, sandbox, start, days, workdir, repeats))
    finally:
        sandbox.stop()
    value, limits_ok = result["value"], result.pop("limits_ok", True)
    met = value >= case.target if case.at_least else value <= case.target
    return {"days": days, "target": case.target, **result,
            "pass": bool(met and limits_ok and result["records_ok"]),
            "case_s": round(time.monotonic() - started, 1)}


def render(results: dict, meta: dict) -> str:
    lines = [f"## Benchmark ({'quick' if meta['quick'] else 'full'} run, {meta['date']})", "",
             f"{meta['machine']}; tap-voluum at {meta['revision']}; whole run "
             f"{meta['elapsed_s'] / 60:.1f} min. Command: `{meta['command']}`", "",
             "| # | Figure | Workload | Result | Target | |", "|---|---|---|---|---|---|"]
    for n, case in enumerate(c for c in CASES if c.key in results):
        r = results[case.key]
        workload, result = case.workload.format(**r), case.result.format(**r)
        mark = "✅" if r["pass"] else "❌"
        lines.append(f"| {n + 1} | {case.title} | {workload} | {result} | {case.target_text} | "
                     f"{mark} |")
    streams = results.get("backfill", {}).get("streams", {})
    lines += ["", "Backfill, per stream:", "", "| Stream | Requests | Fewest | Truth rows | "
              "Records |", "|---|--:|--:|--:|--:|"] if streams else []
    lines += [f"| `{s}` | {v['requests']} | {v['fewest']} | {v['rows_truth']:,} | "
              f"{v['records']:,} |" for s, v in streams.items()]
    return "\n".join(lines) + "\n"


def meta_data(quick: bool) -> dict:
    git = ["git", "describe", "--always", "--dirty"]  # "-dirty": uncommitted changes
    revision = subprocess.run(git, cwd=ROOT, capture_output=True, text=True, check=False).stdout
    return {"date": str(date.today()), "quick": quick, "revision": revision.strip(),
            "command": ".venv/bin/python scripts/bench.py" + (" --quick" if quick else ""),
            "machine": f"{len(os.sched_getaffinity(0))} CPUs, Python "
                       f"{platform.python_version()}, singer-sdk {version('singer-sdk')}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrink every case (smoke run)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "latest.json")
    parser.add_argument("--only", action="append", choices=[c.key for c in CASES],
                        help="only this case (repeatable): nothing is written")
    args = parser.parse_args()
    started, meta = time.monotonic(), meta_data(args.quick)
    root = Path(tempfile.mkdtemp(prefix="tap-voluum-bench-"))
    try:
        cases = [c for c in CASES if not args.only or c.key in args.only]
        results = {case.key: run_case(case, args.quick, root) for case in cases}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    table, data = render(results, meta), json.dumps({"meta": meta, **results}, indent=1)
    print(table)
    for path, text in ((args.json, data + "\n"), (ROOT / "benchmarks" / "latest.md", table)):
        if not args.only:  # a partial run does not replace the latest figures
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    wrong = [k for k, r in results.items() if not r["records_ok"]]
    if wrong:
        sys.exit(f"BENCH FAILED: records, rows or exit codes wrong in {', '.join(wrong)}: "
                 f"{results.get('backfill', {}).get('records_wrong') or 'see above'}")


if __name__ == "__main__":
    main()
