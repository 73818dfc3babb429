"""Benchmark tap-voluum against the sandbox (issues #5 and #13) and write benchmarks/latest.md.

    .venv/bin/python scripts/bench.py            # full run (~10 min on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # smaller data, ~4 min
    .venv/bin/python scripts/bench.py --profile  # also: cProfiles + what-ifs (+3 min)

What it measures, each tap in its own process, the sandbox in another one:

1. Rate limit, one stream: `campaign_report`, one-day windows over 60 days, `page_size` 4
   (3 requests a window: 180 requests), sandbox limit 15 req/s, latency 0.1 / 0.5 / 1 s.
   Requests/s (from the sandbox's admission times), the busiest 1-s window the sandbox
   counted, 429s. Under 12 req/s, max_concurrency is raised (16, 32) while that helps by
   10 % or more; if the target is still missed, 180 one-page windows are read the same way.
2. Rate limit, six streams in one sync: the six built-in daily reports, 60 one-day windows
   each, default settings, at 0.5 s and 1 s latency (and at 0.5 s with page_size 4: several
   pages a window). Share of the budget used = report requests / ((last answer - first
   request) x 15); the busiest 1-s window and the 429s as the sandbox counted them.
3. Throughput: the same ~200,000-row report (campaign x custom-variable-1 x day, one day)
   read by tap-voluum and by a cookiecutter-style singer-sdk tap (scripts/baseline_tap.py),
   alternately; wall time of the tap process from start to exit, stdout counted through a
   pipe, best of the repeats. The sandbox's report cache is warmed first (untimed) and the
   run checks that no report was recomputed while timed. The same report with a stream map
   + flattening + one column deselected (records, mapped fields, the deselected column
   absent), and with BATCH messages (`batch_config`: gzipped JSONL files; records counted
   in the files).
4. Peak memory (max RSS of the tap process, from wait4) at ~100,000 and ~1,000,000 rows with
   default settings; over 150 MB at 1,000,000, the large run is repeated with page_size 2500
   + max_concurrency 4.

`--profile` adds cProfiles of tap-voluum on the 200k report (the main thread = record path,
the pool threads = HTTP + decoding, profiled separately) with and without the stream map,
"what-if" runs patched in the child process only (no tap code is changed), and per-row
costs of each step of the record path.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import pstats
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(VENV_PY) if VENV_PY.exists() else sys.executable
OUT_MD = ROOT / "benchmarks" / "latest.md"

RATE_LIMIT = 15
TARGET_RPS = 12.0
TARGET_RATIO = 3.5
TARGET_BUDGET = 0.85
TARGET_RSS_MB = 150.0
SIX_REPORTS = (
    "campaign_report",
    "offer_report",
    "lander_report",
    "flow_report",
    "traffic_source_report",
    "affiliate_network_report",
)
LATENCIES = (0.1, 0.5, 1.0)
CONCURRENCY_LADDER = (16, 32)
REPORT = "zone_report"
GROUP_BY = ["campaign", "custom-variable-1"]
MAPPED_FIELDS = ("zone_label", "clicks_x2")
DESELECTED = "campaignName"
PARAM_FORMAT = "%Y-%m-%dT%H:00:00"


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run."""

    rate_days: int  # one-day windows in the rate-limit workload
    campaigns: int  # throughput dataset: ~900 rows per campaign-day
    days: int  # throughput dataset days (the "large" memory point reads them all)
    small_rows: int  # the "small" memory point (rows of a part of day 1)
    repeats: int  # timed repeats of the tap-voluum / baseline comparison (best is kept)


FULL = Plan(rate_days=60, campaigns=225, days=5, small_rows=100_000, repeats=2)
QUICK = Plan(rate_days=20, campaigns=56, days=2, small_rows=25_000, repeats=1)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the sandbox, in a process of its own ------------------------------------------------------


class Sandbox:
    """`python -m voluum_sandbox` in a child process, driven through its admin API."""

    def __init__(self, workdir: Path, name: str, **options: Any) -> None:
        args = [PY, "-m", "voluum_sandbox", "--port", "0"]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.out = workdir / f"sandbox-{name}.out"
        self.err = workdir / f"sandbox-{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=workdir)
        self.info = self._wait_ready()
        self.url = self.info["url"]
        self.access_id = self.info["access_id"]
        self.access_key = self.info["access_key"]
        self._token: str | None = None

    def _wait_ready(self, timeout: float = 300.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = dict(
                line.split("=", 1) for line in self.out.read_text().splitlines() if "=" in line
            )
            if "url" in info:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited: {self.err.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError("sandbox did not start in time")

    def _call(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def configure(self, **knobs: Any) -> None:
        self._call("POST", "/__sandbox__/configure", knobs)

    def clear(self) -> None:
        self._call("POST", "/__sandbox__/clear", {})

    def stats(self) -> dict:
        return self._call("GET", "/__sandbox__/stats")

    def requests(self) -> list[dict]:
        return self._call("GET", "/__sandbox__/requests")["requests"]

    def report(self, params: dict[str, Any]) -> dict:
        """One `/report` call with its own token (used untimed, to warm the report cache)."""
        if self._token is None:
            login = {"accessId": self.access_id, "accessKey": self.access_key}
            self._token = self._call("POST", "/auth/access/session", login)["token"]
        query = urllib.parse.urlencode(params, doseq=True)
        return self._call("GET", f"/report?{query}", headers={"cwauth-token": self._token})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- running a tap ------------------------------------------------------------------------------


@dataclass
class Run:
    """One tap process: wall time, what it wrote, its peak memory."""

    label: str
    wall: float
    records: int
    out_bytes: int
    max_rss_mb: float
    returncode: int
    head: bytes
    stderr: Path
    cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall if self.wall > 0 else 0.0

    def messages(self) -> list[dict]:
        """The complete JSON lines among the first bytes of stdout."""
        lines = self.head.split(b"\n")[:-1]
        return [json.loads(line) for line in lines if line.startswith(b"{")]

    def first_record(self) -> dict:
        return next((m["record"] for m in self.messages() if m.get("type") == "RECORD"), {})

    def schema(self) -> dict:
        return next((m["schema"] for m in self.messages() if m.get("type") == "SCHEMA"), {})


def run_process(label: str, args: list[str], workdir: Path) -> Run:
    """Run a tap, count RECORD messages on its stdout, time it from start to exit."""
    needle = b'"RECORD"'
    stderr_path = workdir / f"{label.replace(' ', '_')}.stderr"
    with stderr_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, cwd=workdir)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        records = out_bytes = 0
        head = bytearray()
        tail = b""
        while chunk := os.read(fd, 1 << 20):
            out_bytes += len(chunk)
            if len(head) < 1 << 19:
                head += chunk[: (1 << 19) - len(head)]
            window = tail + chunk
            records += window.count(needle)  # matches ending inside `chunk`, counted once
            tail = window[-(len(needle) - 1) :]
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    run = Run(label, wall, records, out_bytes, usage.ru_maxrss / 1024, proc.returncode,
              bytes(head), stderr_path, usage.ru_utime + usage.ru_stime)
    if run.returncode != 0:
        log(f"{label}: exit {run.returncode}; last stderr lines:\n"
            + "\n".join(stderr_path.read_text(errors="replace").splitlines()[-15:]))
    return run


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


def tap_catalog(
    config: dict, stream: str | tuple[str, ...], deselect: tuple[str, ...] = ()
) -> dict:
    """Discovered catalog with only `stream` (or those streams) selected, `deselect` off."""
    from tap_voluum.tap import TapVoluum

    streams = (stream,) if isinstance(stream, str) else stream
    catalog = TapVoluum(config=config, validate_config=False, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            crumb = item["breadcrumb"]
            if crumb == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
            elif entry["tap_stream_id"] in streams and crumb[-1] in deselect:
                item["metadata"]["selected"] = False
    return catalog


def run_tap(label: str, workdir: Path, config: dict, catalog: dict, *,
            child: list[str] | None = None) -> Run:
    """Run tap-voluum (`python -m tap_voluum`, or this script's child mode for profiles)."""
    slug = label.replace(" ", "_")
    cfg = write_json(workdir / f"{slug}.config.json", config)
    cat = write_json(workdir / f"{slug}.catalog.json", catalog)
    tap_args = ["--config", str(cfg), "--catalog", str(cat)]
    if child is None:
        args = [PY, "-m", "tap_voluum", *tap_args]
    else:
        args = [PY, str(Path(__file__).resolve()), "--child", *child, "--", *tap_args]
    return run_process(label, args, workdir)


def run_baseline(label: str, workdir: Path, config: dict) -> Run:
    cfg = write_json(workdir / f"{label.replace(' ', '_')}.config.json", config)
    args = [PY, str(ROOT / "scripts" / "baseline_tap.py"), "--config", str(cfg)]
    return run_process(label, args, workdir)


# --- 1. the rate limit ------------------------------------------------------------------------


@dataclass
class RateResult:
    latency: float
    page_size: int
    concurrency: int
    requests: int
    windows: int
    rps: float
    wall_rps: float
    busiest: int
    n429: int
    wall: float

    @property
    def ok(self) -> bool:
        return self.rps >= TARGET_RPS and self.busiest <= RATE_LIMIT and self.n429 == 0


RATE_CAMPAIGNS = 12  # rows per one-day window of campaign_report
SEVERAL_PAGES = 4  # page_size: 3 requests per window
ONE_PAGE = 100  # page_size: 1 request per window


def rate_phases(plan: Plan, workdir: Path) -> tuple[list[RateResult], list[SixResult]]:
    """The one-stream rate runs, then the six-stream syncs, against one sandbox."""
    start = date.today() - timedelta(days=3 * plan.rate_days + 7)  # all in the past
    sandbox = Sandbox(workdir, "rate", seed=1, start=start, days=3 * plan.rate_days,
                      campaigns=RATE_CAMPAIGNS, zones=40, events_per_campaign_hour=3,
                      rate_limit=RATE_LIMIT)
    try:
        config = {
            "access_id": sandbox.access_id,
            "access_key": sandbox.access_key,
            "api_url": sandbox.url,
            "start_date": f"{start}T00:00:00Z",
            "end_date": f"{start + timedelta(days=plan.rate_days)}T00:00:00Z",
            "timezone": "UTC",
            "report_window_days": 1,
        }
        return rate_phase(plan, workdir, sandbox, config), six_phase(workdir, sandbox, config)
    finally:
        sandbox.stop()


def rate_phase(plan: Plan, workdir: Path, sandbox: Sandbox, config: dict) -> list[RateResult]:
    """For each latency: the several-pages workload, raising max_concurrency while it helps;
    if it misses the target, one-page windows (as many requests: 3x the days), to show
    whether the limiter or the scheduling of a window's follow-up pages holds it back."""
    start = date.fromisoformat(config["start_date"][:10])
    results: list[RateResult] = []
    catalog = tap_catalog(config, "campaign_report")
    for latency in LATENCIES:
        sandbox.configure(latency=latency, rate_limit=RATE_LIMIT)
        for page_size in (SEVERAL_PAGES, ONE_PAGE):
            previous = 0.0
            for concurrency in CONCURRENCY_LADDER:
                sandbox.clear()
                label = f"rate {latency}s page_size {page_size} c{concurrency}"
                days = plan.rate_days * (1 if page_size == SEVERAL_PAGES else 3)
                end = f"{start + timedelta(days=days)}T00:00:00Z"
                cfg = {**config, "end_date": end, "page_size": page_size,
                       "max_concurrency": concurrency}
                run = run_tap(label, workdir, cfg, catalog)
                result = rate_result(latency, page_size, concurrency, run, sandbox)
                results.append(result)
                log(f"{label}: {result.requests} requests, {result.rps:.1f} req/s, busiest "
                    f"1-s window {result.busiest}, {result.n429} x 429, {result.wall:.1f} s")
                if result.rps >= TARGET_RPS or result.rps < previous * 1.1:
                    break  # target met, or more threads did not help
                previous = result.rps
            if results[-1].rps >= TARGET_RPS:
                break
    return results


@dataclass
class SixResult:
    """One sync of the six daily reports, as the sandbox saw it."""

    latency: float
    settings: dict[str, int]
    days: int
    requests: int
    span: float
    busiest: int
    n429: int
    wall: float
    records: int
    returncode: int
    switches: list[tuple[str, float]]  # (stream, seconds after the first request) per stream

    @property
    def budget(self) -> float:
        """Report requests / ((last answer - first request) x the sandbox's limit)."""
        return self.requests / (self.span * RATE_LIMIT) if self.span > 0 else 0.0

    @property
    def ok(self) -> bool:
        return (self.budget >= TARGET_BUDGET and self.busiest <= RATE_LIMIT and self.n429 == 0
                and self.returncode == 0)

    @property
    def shown_settings(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.settings.items()) or "defaults"


SIX_RUNS: tuple[tuple[float, dict[str, int]], ...] = (
    (0.5, {}),
    (0.5, {"page_size": SEVERAL_PAGES}),
    (1.0, {}),
)


def six_phase(workdir: Path, sandbox: Sandbox, config: dict) -> list[SixResult]:
    """The six built-in daily reports in one sync, per latency and settings."""
    catalog = tap_catalog(config, SIX_REPORTS)
    results = []
    for latency, settings in SIX_RUNS:
        sandbox.configure(latency=latency, rate_limit=RATE_LIMIT)
        sandbox.clear()
        label = f"six reports {latency}s " + ("defaults" if not settings else " ".join(
            f"{k} {v}" for k, v in settings.items()))
        run = run_tap(label, workdir, {**config, **settings}, catalog)
        entries = sorted((e for e in sandbox.requests() if e["path"] == "/report"),
                         key=lambda e: e["t"])
        stats = sandbox.stats()
        first = entries[0]["t"] if entries else 0.0
        last = max((e["t"] + e.get("duration", 0.0) for e in entries), default=first)
        switches: list[tuple[str, float]] = []
        for entry in entries:
            group = entry["query"].get("groupBy", ["?"])[0]
            if group not in {g for g, _ in switches}:
                switches.append((group, entry["t"] - first))
        days = (date.fromisoformat(config["end_date"][:10])
                - date.fromisoformat(config["start_date"][:10])).days
        result = SixResult(
            latency=latency, settings=settings, days=days, requests=len(entries),
            span=last - first,
            busiest=max(stats["max_per_second"].values(), default=0),
            n429=int(stats["by_status"].get("429", 0)), wall=run.wall, records=run.records,
            returncode=run.returncode, switches=switches,
        )
        results.append(result)
        log(f"{label}: {result.requests} report requests in {result.span:.1f} s = "
            f"{result.budget:.1%} of the budget, busiest 1-s window {result.busiest}, "
            f"{result.n429} x 429, {result.records} records, exit {result.returncode}")
    return results


def rate_result(
    latency: float, page_size: int, concurrency: int, run: Run, sandbox: Sandbox
) -> RateResult:
    entries = [e for e in sandbox.requests() if e["path"] == "/report"]
    starts = sorted(e["t"] for e in entries)
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    stats = sandbox.stats()
    windows = len({(e["query"].get("from", [""])[0]) for e in entries})
    return RateResult(
        latency=latency,
        page_size=page_size,
        concurrency=concurrency,
        requests=len(entries),
        windows=windows,
        rps=(len(starts) - 1) / span if span > 0 else 0.0,
        wall_rps=len(entries) / run.wall,
        busiest=max(stats["max_per_second"].values(), default=0),
        n429=int(stats["by_status"].get("429", 0)),
        wall=run.wall,
    )


# --- 2-4. throughput, stream maps, memory ------------------------------------------------------


@dataclass
class ThroughputResults:
    rows_day: int = 0
    baseline: list[Run] = field(default_factory=list)
    tap: list[Run] = field(default_factory=list)
    mapped: list[Run] = field(default_factory=list)
    mapped_checks: dict[str, bool] = field(default_factory=dict)
    batch: list[Run] = field(default_factory=list)
    memory: list[tuple[int, Run]] = field(default_factory=list)
    memory_alt: list[tuple[dict[str, int], Run]] = field(default_factory=list)
    recomputed: list[str] = field(default_factory=list)
    profile: dict[str, str] = field(default_factory=dict)
    whatif: list[tuple[str, Run]] = field(default_factory=list)
    decode: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def best(runs: list[Run]) -> Run:
        return min(runs, key=lambda r: r.wall)


def window_params(first: datetime, end: datetime) -> dict[str, Any]:
    """The query tap-voluum sends for this window, so that warming hits the same cache entry."""
    return {
        "from": first.strftime(PARAM_FORMAT),
        "to": end.strftime(PARAM_FORMAT),
        "tz": "UTC",
        "groupBy": [*GROUP_BY, "day"],
        "include": "ALL",
        "sort": "campaignId",
        "direction": "ASC",
        "limit": 1,
        "offset": 0,
    }


def total_rows(sandbox: Sandbox, first: datetime, end: datetime) -> int:
    return int(sandbox.report(window_params(first, end))["totalRows"])


def hours_for(sandbox: Sandbox, day: datetime, rows: int) -> tuple[int, int]:
    """Fewest whole hours of `day` holding at least `rows` rows (binary search)."""
    low, high = 1, 24
    while low < high:
        mid = (low + high) // 2
        if total_rows(sandbox, day, day + timedelta(hours=mid)) >= rows:
            high = mid
        else:
            low = mid + 1
    return low, total_rows(sandbox, day, day + timedelta(hours=low))


def throughput_phase(plan: Plan, workdir: Path, profile: bool) -> ThroughputResults:
    res = ThroughputResults()
    first_day = date.today() - timedelta(days=plan.days + 7)  # all in the past
    day1 = datetime(first_day.year, first_day.month, first_day.day)
    sandbox = Sandbox(workdir, "rows", seed=1, start=day1.date(), days=plan.days,
                      campaigns=plan.campaigns, zones=1000, events_per_campaign_hour=100,
                      rate_limit=RATE_LIMIT)
    try:
        log("warming the sandbox's report cache (untimed)")
        for n in range(plan.days):
            rows = total_rows(sandbox, day1 + timedelta(days=n), day1 + timedelta(days=n + 1))
            res.rows_day = res.rows_day or rows
        small_hours, small_rows = hours_for(sandbox, day1, plan.small_rows)
        creds = {"access_id": sandbox.access_id, "access_key": sandbox.access_key,
                 "api_url": sandbox.url}

        def span(days: float) -> dict[str, str]:
            end = day1 + timedelta(days=days)
            return {"start_date": f"{day1:%Y-%m-%dT%H:%M:%S}Z",
                    "end_date": f"{end:%Y-%m-%dT%H:%M:%S}Z"}

        tap_cfg = {**creds, **span(1), "timezone": "UTC", "custom_reports": [
            {"name": REPORT, "group_by": GROUP_BY, "granularity": "day"}]}
        catalog = tap_catalog(tap_cfg, REPORT)
        base_cfg = {**creds, **span(1), "timezone": "UTC"}
        mapped_cfg = {**tap_cfg, **MAPPED_SETTINGS}
        mapped_cat = tap_catalog(mapped_cfg, REPORT, deselect=(DESELECTED,))
        batch_root = workdir / "batches"
        batch_cfg = {**tap_cfg, "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": batch_root.as_uri(), "prefix": "batch-"}}}

        def timed(kind: str, label: str, make: Any) -> Run:
            before = sandbox.stats()["report_computations"]
            run = make()
            run.label = label
            if sandbox.stats()["report_computations"] != before:
                res.recomputed.append(label)
            log(f"{label}: {run.records:,} records in {run.wall:.2f} s = {run.records_per_s:,.0f}"
                f"/s, max RSS {run.max_rss_mb:.0f} MB ({kind})")
            return run

        def batched() -> Run:
            shutil.rmtree(batch_root, ignore_errors=True)
            run = run_tap("batch", workdir, batch_cfg, catalog)
            run.records = batch_records(batch_root)
            run.extra["batch_messages"] = sum(m.get("type") == "BATCH" for m in run.messages())
            run.extra["batch_mb"] = sum(f.stat().st_size for f in batch_root.glob("*")) / 1e6
            return run

        for n in range(plan.repeats):  # alternately, so that both meet the same noise
            res.baseline.append(timed("baseline", f"baseline #{n + 1}",
                                      lambda: run_baseline("baseline", workdir, base_cfg)))
            res.tap.append(timed("tap-voluum", f"tap-voluum #{n + 1}",
                                 lambda: run_tap("tap", workdir, tap_cfg, catalog)))
            res.mapped.append(timed("stream map", f"tap-voluum + map/flatten/deselect #{n + 1}",
                                    lambda: run_tap("mapped", workdir, mapped_cfg, mapped_cat)))
            res.batch.append(timed("BATCH", f"tap-voluum BATCH (jsonl.gz) #{n + 1}", batched))
        res.mapped_checks = mapped_checks(ThroughputResults.best(res.mapped), res.rows_day)

        small_cfg = {**tap_cfg, **span(small_hours / 24)}
        small = timed("memory", f"tap-voluum {small_rows:,} rows",
                      lambda: run_tap("mem_small", workdir, small_cfg, catalog))
        res.memory.append((small_rows, small))
        large_rows = sum(
            total_rows(sandbox, day1 + timedelta(days=n), day1 + timedelta(days=n + 1))
            for n in range(plan.days)
        )
        memory_runs(res, workdir, {**tap_cfg, **span(plan.days)}, catalog,
                    large_rows=large_rows, timed=timed)

        if profile:
            profile_phase(res, workdir, tap_cfg=tap_cfg, catalog=catalog, mapped_cfg=mapped_cfg,
                          mapped_cat=mapped_cat, sandbox=sandbox, timed=timed,
                          repeats=plan.repeats)
    finally:
        sandbox.stop()
    return res


def memory_runs(res: ThroughputResults, workdir: Path, large_cfg: dict, catalog: dict, *,
                large_rows: int, timed: Any) -> None:
    """The large read with defaults; over the target, again with smaller settings."""
    large = timed("memory", f"tap-voluum {large_rows:,} rows",
                  lambda: run_tap("mem_large", workdir, large_cfg, catalog))
    res.memory.append((large_rows, large))
    if large.max_rss_mb > TARGET_RSS_MB:  # show which settings reach the target
        for settings in MEMORY_SETTINGS:
            label = f"tap-voluum {large_rows:,} rows, " + ", ".join(
                f"{k} {v}" for k, v in settings.items())
            res.memory_alt.append((settings, timed("memory", label, lambda s=settings: run_tap(
                "mem_alt", workdir, {**large_cfg, **s}, catalog))))


MAPPED_SETTINGS: dict[str, Any] = {
    "stream_maps": {REPORT: {
        "zone_label": "str(customVariable1) + '@' + str(campaignCountry)",
        "clicks_x2": "int(clicks) * 2",
    }},
    "flattening_enabled": True,
    "flattening_max_depth": 2,
}


def mapped_checks(run: Run, rows: int) -> dict[str, bool]:
    """What the stream map, flattening and the deselected column must have done."""
    first = run.first_record()
    props = run.schema().get("properties", {})
    return {
        "all records": run.records == rows,
        "mapped fields in records": all(f in first for f in MAPPED_FIELDS),
        "mapped fields in schema": all(f in props for f in MAPPED_FIELDS),
        "zone_label value": first.get("zone_label")
        == f"{first.get('customVariable1')}@{first.get('campaignCountry')}",
        "clicks_x2 value": first.get("clicks_x2") == 2 * (first.get("clicks") or 0),
        f"{DESELECTED} deselected": DESELECTED not in first and DESELECTED not in props,
    }


def batch_records(root: Path) -> int:
    """Records in the batch files a BATCH run wrote (gzipped JSON lines)."""
    import gzip

    count = 0
    for path in root.glob("*"):
        with gzip.open(path, "rb") as batch:
            while chunk := batch.read(1 << 20):
                count += chunk.count(b"\n")
    return count


# --- profile and what-ifs ----------------------------------------------------------------------

WHATIFS: dict[str, str] = {
    "-": "as is",
    "sdk_writer": "records through the SDK's writer (pop, map, RecordMessage, flush each)",
    "gc_off": "cyclic garbage collector off",
}


MEMORY_SETTINGS: tuple[dict[str, int], ...] = (
    {"page_size": 2500, "max_concurrency": 4},
)


def profile_phase(res: ThroughputResults, workdir: Path, *, tap_cfg: dict, catalog: dict,
                  mapped_cfg: dict, mapped_cat: dict, sandbox: Sandbox, timed: Any,
                  repeats: int) -> None:
    out = workdir / "tap.prof"
    timed("profile", "tap-voluum under cProfile",
          lambda: run_tap("profile", workdir, tap_cfg, catalog, child=[str(out), "-"]))
    res.profile = {
        "main": top_functions(f"{out}.main", "cumulative")
        + top_functions(f"{out}.main", "tottime"),
        "workers": top_functions(f"{out}.workers", "tottime", 10),
    }
    mapped_out = workdir / "mapped.prof"
    timed("profile", "tap-voluum + map/flatten/deselect under cProfile",
          lambda: run_tap("profile_mapped", workdir, mapped_cfg, mapped_cat,
                          child=[str(mapped_out), "-"]))
    res.profile["mapped"] = top_functions(f"{mapped_out}.main", "tottime", 20)
    runs: dict[str, list[Run]] = {label: [] for label in WHATIFS.values()}
    for _ in range(repeats):
        for patches, label in WHATIFS.items():
            runs[label].append(timed("what-if", f"what-if {label}", lambda p=patches: run_tap(
                "whatif", workdir, tap_cfg, catalog, child=["-", p])))
    res.whatif = [(label, ThroughputResults.best(found)) for label, found in runs.items()]
    res.decode = record_path_costs(sandbox, tap_cfg, catalog, mapped_cfg, mapped_cat)


def top_functions(path: str, key: str, limit: int = 15) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(path, stream=stream)
    stats.strip_dirs().sort_stats(key).print_stats(limit)
    text = stream.getvalue()
    body = text[text.find("   ncalls"):] if "   ncalls" in text else text
    return f"-- top {limit} by {key} ({path.rsplit('.', 1)[-1]}) --\n{body.rstrip()}\n"


def record_path_costs(sandbox: Sandbox, tap_cfg: dict, catalog: dict, mapped_cfg: dict,
                      mapped_cat: dict) -> dict[str, float]:
    """Microseconds per row of each step of the record path, on one real 10,000-row page.

    Runs in this process with stdout sent to /dev/null (no pipe, no sandbox competing).
    """
    import gc
    import tracemalloc

    import msgspec
    from singer_sdk.helpers._catalog import pop_deselected_record_properties
    from tap_voluum.streams.page_scheduler import Page, PageToken

    from tap_voluum.streams.windows import Window
    from tap_voluum.tap import TapVoluum

    day = datetime.fromisoformat(tap_cfg["start_date"].rstrip("Z"))
    params = {**window_params(day, day + timedelta(days=1)), "limit": 10_000}
    sandbox.report({**params, "limit": 1})
    request = urllib.request.Request(
        f"{sandbox.url}/report?{urllib.parse.urlencode(params, doseq=True)}")
    request.add_header("cwauth-token", sandbox._token or "")
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
    rows_n = len(msgspec.json.decode(body)["rows"])

    with contextlib.redirect_stderr(io.StringIO()):
        tap = TapVoluum(config=tap_cfg, catalog=catalog)
        mapped_tap = TapVoluum(config=mapped_cfg, catalog=mapped_cat)
    stream: Any = tap.streams[REPORT]
    mapped: Any = mapped_tap.streams[REPORT]
    window = Window(day, day + timedelta(days=1), 1, 1)

    def page() -> Page:
        return Page(PageToken(window, 0), body, rows_n, rows_n)

    def per_row(fn: Any, n: int = 5) -> float:
        best = float("inf")
        for _ in range(n):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best * 1e6 / rows_n

    def size_mb(fn: Any) -> float:
        gc.collect()
        tracemalloc.start()
        keep = fn()
        current = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del keep
        return current / 1e6

    def rows_of(target: Any) -> list[dict]:
        return [record for chunk in target.record_chunks(window, page()) for record in chunk]

    records = rows_of(stream)
    mapped_records = rows_of(mapped)
    decoder = stream._page_decoder

    def pop_all() -> None:
        for record in records:
            pop_deselected_record_properties(record, stream.schema, stream.mask)

    costs = {
        "rows": rows_n,
        "body_mb": len(body) / 1e6,
        "decode_dict": per_row(lambda: msgspec.json.decode(body)),
        "decode_struct": per_row(lambda: decoder.decode(body)),
        "dict_mb": size_mb(lambda: msgspec.json.decode(body)),
        "struct_mb": size_mb(lambda: decoder.decode(body)),
        "rows_of": per_row(lambda: rows_of(stream)),
        "pop_deselected": per_row(pop_all),
    }
    costs.update(write_costs(stream, mapped, records, mapped_records, per_row))
    return costs


def write_costs(stream: Any, mapped: Any, records: list[dict], mapped_records: list[dict],
                per_row: Any) -> dict[str, float]:
    """Per-row costs of writing records: tap-voluum's writer, the SDK's, the stream map's."""
    costs: dict[str, float] = {}
    copy_cost = per_row(lambda: [dict(r) for r in records])
    writer = stream.make_record_writer()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        costs["sdk_write"] = per_row(
            lambda: [stream._write_record_message(dict(r)) for r in records]) - copy_cost
        costs["mapped_write"] = per_row(
            lambda: [mapped._write_record_message(dict(r)) for r in mapped_records]) - copy_cost

        def fast() -> None:
            write = writer.for_page()
            for record in records:
                write(record)
            writer.flush()

        costs["fast_write"] = per_row(fast)
        transform = mapped.stream_maps[0].transform
        costs["map_transform"] = per_row(
            lambda: [transform(dict(r)) for r in mapped_records]) - copy_cost
    return costs


ROW_METRICS = (
    "visits", "uniqueVisits", "clicks", "conversions", "errors", "impressions", "revenue", "cost",
    "profit", "roi", "cpv", "ctr", "cr", "cv", "epv", "epc", "ap", "ictr", "ecpa", "ecpc", "ecpm",
    "rpm", *(f"customConversions{n}" for n in range(1, 6)),
    *(f"customRevenue{n}" for n in range(1, 6)),
)


def child_main(argv: list[str]) -> None:
    """`bench.py --child PROFILE_OUT|- PATCHES|- -- TAP_ARGS`: run tap-voluum in this process."""
    profile_out, patches, sep, *tap_args = argv
    assert sep == "--"
    apply_patches([] if patches == "-" else patches.split(","))
    from tap_voluum.tap import TapVoluum

    if profile_out == "-":
        TapVoluum.cli.main(args=tap_args, prog_name="tap-voluum")
        return
    import cProfile
    import threading

    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        prof.enable()
        try:
            original_run(self)
        finally:
            prof.disable()
            profiles.append(prof)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile()
    main.enable()
    try:
        with contextlib.suppress(SystemExit):
            TapVoluum.cli.main(args=tap_args, prog_name="tap-voluum")
    finally:
        main.disable()
        sys.stdout.flush()
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(10)
        main.dump_stats(f"{profile_out}.main")
        if profiles:
            workers = pstats.Stats(profiles[0])
            for prof in profiles[1:]:
                workers.add(prof)
            workers.dump_stats(f"{profile_out}.workers")


def apply_patches(patches: list[str]) -> None:
    """What-if switches, applied to this child process only."""
    if "sdk_writer" in patches:
        from tap_voluum.streams import windows

        windows.WindowedStream.make_record_writer = lambda self: None  # type: ignore[method-assign]
    if "gc_off" in patches:
        import gc

        gc.disable()


# --- the report -------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
            f"Python {platform.python_version()}, singer-sdk {version('singer-sdk')}, "
            f"msgspec {version('msgspec')}, Linux {platform.release()}")


REVISION = {"text": "live tree"}


def snapshot(workdir: Path) -> None:
    """Copy tap_voluum/ (tap + sandbox) and run every process from that copy.

    Others edit the tap while the bench runs; the copy keeps one run on one version.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "tap_voluum"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", ""
    target = workdir / "src" / "tap_voluum"
    shutil.copytree(ROOT / "tap_voluum", target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(target.rglob("*.py")):
        digest.update(path.relative_to(target).as_posix().encode() + b"\0" + path.read_bytes())
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(target.parent), os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, str(target.parent))
    REVISION["text"] = (f"commit {head}" + (" + uncommitted changes" if dirty else "")
                        + f" (snapshot of tap_voluum/*.py, sha256 {digest.hexdigest()[:12]})")


def revision() -> str:
    return REVISION["text"]


def defaults() -> str:
    """The tap's default page_size and max_concurrency, as its settings schema says."""
    from tap_voluum.tap import TapVoluum

    props = TapVoluum.config_jsonschema["properties"]
    return ", ".join(f"{k} {props[k]['default']}" for k in ("page_size", "max_concurrency"))


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def render(plan: Plan, *, quick: bool, rates: list[RateResult], sixes: list[SixResult],
           tp: ThroughputResults, elapsed: float) -> str:
    base = tp.best(tp.baseline)
    tap = tp.best(tp.tap)
    mapped = tp.best(tp.mapped)
    batch = tp.best(tp.batch)

    def ratio(run: Run) -> float:
        return run.records_per_s / base.records_per_s if base.records_per_s else 0.0

    lines = [
        f"## Benchmark ({'quick' if quick else 'full'} run, {date.today()})",
        "",
        f"Machine: {machine()}. tap-voluum {revision()}. Sandbox in its own process; taps "
        "write to a counting pipe. The machine's 2 cores are shared with other work: figures "
        f"are the best of {plan.repeats} alternating runs, and vary from run to run.",
        "Command: `.venv/bin/python scripts/bench.py" + (" --quick`" if quick else "`"),
        "",
        "| Check | Workload / setting | Result | Target | |",
        "|---|---|---|---|---|",
        f"| Records/s, baseline | cookiecutter singer-sdk RESTStream, {tp.rows_day:,} rows | "
        f"{base.records_per_s:,.0f} rec/s ({base.wall:.1f} s, {base.max_rss_mb:.0f} MB) | | |",
        f"| Records/s, tap-voluum | same report, defaults ({defaults()}) | "
        f"**{tap.records_per_s:,.0f} rec/s** ({tap.wall:.1f} s, {tap.max_rss_mb:.0f} MB), "
        f"**{ratio(tap):.2f}x** baseline | ≥ {TARGET_RATIO:g}x | "
        f"{mark(ratio(tap) >= TARGET_RATIO)} |",
        f"| Stream map + flattening + `{DESELECTED}` deselected | same report | "
        f"{mapped.records:,} records, **{mapped.records_per_s:,.0f} rec/s**, "
        f"**{ratio(mapped):.2f}x** baseline (the SDK's mapper writes each record), "
        f"`{'`, `'.join(MAPPED_FIELDS)}` present, `{DESELECTED}` absent | all records, "
        f"fields as mapped | {mark(all(tp.mapped_checks.values()) and mapped.returncode == 0)} |",
        f"| BATCH messages (`batch_config` jsonl, gzip) | same report | {batch.records:,} records "
        f"in {batch.extra.get('batch_messages', 0)} files ({batch.extra.get('batch_mb', 0):.0f} "
        f"MB), **{batch.records_per_s:,.0f} rec/s**, **{ratio(batch):.2f}x** baseline | "
        f"all records | {mark(batch.records == tp.rows_day and batch.returncode == 0)} |",
    ]
    for rows, run in tp.memory:
        big = rows >= 1_000_000 or rows == max(r for r, _ in tp.memory)
        target = f"≤ {TARGET_RSS_MB:g} MB" if big else ""
        ok = mark(run.max_rss_mb <= TARGET_RSS_MB) if big else ""
        lines.append(
            f"| Peak memory, {rows:,} rows | tap-voluum defaults, max RSS of the process | "
            f"**{run.max_rss_mb:.0f} MB** ({run.records_per_s:,.0f} rec/s, {run.wall:.1f} s) | "
            f"{target} | {ok} |"
        )
    for settings, run in tp.memory_alt:
        shown = ", ".join(f"{k} {v}" for k, v in settings.items())
        lines.append(
            f"| Peak memory, {tp.memory[-1][0]:,} rows | tap-voluum with {shown} | "
            f"**{run.max_rss_mb:.0f} MB** ({run.records_per_s:,.0f} rec/s, {run.wall:.1f} s) | "
            f"≤ {TARGET_RSS_MB:g} MB | {mark(run.max_rss_mb <= TARGET_RSS_MB)} |"
        )
    for six in sixes:
        target = (f"≥ {TARGET_BUDGET:.0%} of the budget, ≤ {RATE_LIMIT}/s, 0 x 429"
                  if six.latency <= 0.5 else "(wider row: no target)")
        ok = mark(six.ok) if six.latency <= 0.5 else ""
        lines.append(
            f"| Six daily reports, one sync, {six.latency:g} s latency | 6 x {six.days}"
            f" one-day windows, {six.shown_settings}; sandbox limit {RATE_LIMIT}/s | "
            f"{six.requests} report requests in {six.span:.1f} s: **{six.budget:.1%} of the "
            f"budget**, busiest 1-s window {six.busiest}, {six.n429} x 429 | {target} | {ok} |"
        )
    for latency in LATENCIES:
        for page_size in (SEVERAL_PAGES, ONE_PAGE):
            runs = [r for r in rates if r.latency == latency and r.page_size == page_size]
            if not runs:
                continue
            last = runs[-1]
            shape = "3 requests/window" if page_size == SEVERAL_PAGES else "1 request/window"
            tried = ", ".join(f"{r.concurrency} -> {r.rps:.1f}" for r in runs)
            lines.append(
                f"| Rate limit, one stream, {latency:g} s latency | `campaign_report`, "
                f"{last.windows} one-day windows, page_size {page_size} ({shape}); "
                f"max_concurrency -> req/s: {tried} | **{last.rps:.1f} req/s** (max_concurrency "
                f"{last.concurrency}), busiest 1-s window {max(r.busiest for r in runs)}, "
                f"{sum(r.n429 for r in runs)} x 429 | ≥ {TARGET_RPS:g} req/s, ≤ {RATE_LIMIT}, "
                f"0 x 429 | {mark(last.ok)} |"
            )
    lines += ["", "Details:", ""]
    lines += [
        "| Run | Records | Wall s | CPU s | Records/s | vs baseline | Output MB | Max RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    all_runs = [*tp.baseline, *tp.tap, *tp.mapped, *tp.batch, *(r for _, r in tp.memory)]
    all_runs += [r for _, r in tp.memory_alt]
    all_runs += [r for _, r in tp.whatif]
    for run in all_runs:
        label = run.label if run.returncode == 0 else f"{run.label} (exit {run.returncode})"
        lines.append(f"| {label} | {run.records:,} | {run.wall:.2f} | {run.cpu_s:.1f} | "
                     f"{run.records_per_s:,.0f} | {ratio(run):.2f}x | "
                     f"{run.out_bytes / 1e6:,.0f} | {run.max_rss_mb:.0f} |")
    lines += [
        "",
        "| Six reports: latency, settings | Report requests | Span s | Share of budget "
        "| Busiest 1-s window | 429s | Records | Wall s | Each stream's first request, s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for six in sixes:
        firsts = ", ".join(f"{g} {t:.1f}" for g, t in six.switches)
        lines.append(f"| {six.latency:g} s, {six.shown_settings} | {six.requests} | "
                     f"{six.span:.1f} | {six.budget:.1%} | {six.busiest} | {six.n429} | "
                     f"{six.records:,} | {six.wall:.1f} | {firsts} |")
    lines += [
        "",
        "| Latency | page_size | max_concurrency | Requests | Req/s (sandbox) | Req/s (wall) "
        "| Busiest 1-s window | 429s | Wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rates:
        lines.append(f"| {r.latency:g} s | {r.page_size} | {r.concurrency} | {r.requests} | "
                     f"{r.rps:.1f} | {r.wall_rps:.1f} | {r.busiest} | {r.n429} | {r.wall:.1f} |")
    lines += [
        "",
        "Notes: Records/s = records / wall time of the tap process (start to exit, start-up "
        f"included), best of {plan.repeats}, tap-voluum and the baseline run alternately; the "
        "sandbox's report cache was warmed before timing"
        + (f" (recomputed during: {', '.join(tp.recomputed)})" if tp.recomputed else "")
        + ". The baseline reads 10,000-row pages one at a time (plus one empty page to stop). "
        "BATCH records are counted in the batch files. Six reports: share of the budget = "
        f"report requests / ((last answer - first request) x {RATE_LIMIT}), on the sandbox's "
        "clock; the busiest 1-s window is the sandbox's own count (sliding second). One "
        "stream: req/s (sandbox) = (requests - 1) / time between the first and last request "
        "the sandbox admitted; req/s (wall) also counts process start-up and the last answer. "
        f"Mapped-run checks: {', '.join(f'{k} {mark(v)}' for k, v in tp.mapped_checks.items())}."
        f" Total bench time {elapsed / 60:.1f} min.",
    ]
    return "\n".join(lines + render_profile(tp)) + "\n"


def render_profile(tp: ThroughputResults) -> list[str]:
    """The `--profile` sections: cProfiles, what-ifs, per-row costs."""
    lines: list[str] = []
    if tp.profile:
        lines += ["", f"### Profile (cProfile, tap-voluum, {tp.rows_day:,} rows)", "", "```",
                  tp.profile["main"].rstrip(), "", tp.profile["workers"].rstrip(), "```"]
        lines += ["", "With the stream map, flattening and a deselected column (main thread):",
                  "", "```", tp.profile["mapped"].rstrip(), "```"]
    if tp.whatif:
        as_is = next((r for label, r in tp.whatif if label == "as is"), None)
        lines += [
            "",
            "### What-ifs (patched in the child process only; tap code unchanged)",
            "",
            f"| What-if ({tp.rows_day:,} rows) | Best wall s | CPU s | Records/s "
            "| vs as is | Max RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, run in tp.whatif:
            versus = (f"{as_is.wall / run.wall:.2f}x" if as_is and run.records == as_is.records
                      else "")
            lines.append(f"| {label} | {run.wall:.2f} | {run.cpu_s:.1f} | "
                         f"{run.records_per_s:,.0f} | {versus} | {run.max_rss_mb:.0f} |")
    if tp.decode:
        d = tp.decode
        lines += [
            "",
            f"Record path, microseconds per row on one {d['rows']:,.0f}-row page "
            f"({d['body_mb']:.1f} MB JSON), in-process, stdout to /dev/null:",
            "",
            "| Step | us/row |",
            "|---|---:|",
            f"| msgspec decode of the page to dicts (holds the GIL; {d['dict_mb']:.0f} MB "
            f"of objects per page) | {d['decode_dict']:.2f} |",
            f"| msgspec decode of the selected fields only (tap-voluum; {d['struct_mb']:.0f} MB "
            f"per page) | {d['decode_struct']:.2f} |",
            f"| `record_chunks`: decode + records (bucket, zone, currency) | {d['rows_of']:.2f} |",
            f"| tap-voluum's RECORD writer (same JSON line, buffered) | {d['fast_write']:.2f} |",
            f"| SDK `_write_record_message` (pop + map + RecordMessage + msgspec + flush) "
            f"| {d['sdk_write']:.2f} |",
            f"| SDK `pop_deselected_record_properties` alone | {d['pop_deselected']:.2f} |",
            f"| SDK `_write_record_message` with the stream map + flattening "
            f"| {d['mapped_write']:.2f} |",
            f"| SDK stream map `transform` alone (simpleeval + flatten) "
            f"| {d['map_transform']:.2f} |",
        ]
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument("--profile", action="store_true", help="cProfile + what-if runs")
    parser.add_argument("--skip-rate", action="store_true", help="skip the rate-limit runs")
    parser.add_argument("--output", type=Path, default=OUT_MD, help="Markdown file to write")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--live", action="store_true",
                        help="run the working tree as is, not a snapshot of tap_voluum/")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tap-voluum-bench-"))
    log(f"work directory {workdir}")
    try:
        if not args.live:
            snapshot(workdir)
            log(f"benchmarking {revision()}")
        rates, sixes = ([], []) if args.skip_rate else rate_phases(plan, workdir)
        tp = throughput_phase(plan, workdir, args.profile)
        table = render(plan, quick=args.quick, rates=rates, sixes=sixes, tp=tp,
                       elapsed=time.monotonic() - started)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
