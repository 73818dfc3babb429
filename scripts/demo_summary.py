"""The two halves of scripts/demo.sh's output.

    demo_summary.py progress < meltano-json-log     # short progress lines while Meltano runs
    demo_summary.py summary --duckdb FILE ...       # rows per table, report totals, exit 1 on loss

`progress` reads `meltano --log-format=json` lines on stdin and prints the few that tell what is
happening (streams started, rows loaded, warnings, errors, Meltano's own steps).

`summary` compares, table by table, the rows in the DuckDB file with the records the tap wrote
(the `record_count` metrics in the JSON log), and the campaign report's totals with the numbers
the sandbox computes from its own raw events.  DuckDB is read with the target-duckdb plugin's
own Python (it has the pinned duckdb), so this script needs only the project's .venv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

SCHEMA = "tap_voluum"

QUERY_DUCKDB = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
schema = sys.argv[2]
tables = [r[0] for r in con.execute(
    "select table_name from information_schema.tables where table_schema = ? order by 1",
    [schema]).fetchall()]
out = {"rows": {}, "report": None}
for table in tables:
    out["rows"][table] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
if "campaign_report" in tables:
    row = con.execute(
        f'select sum(visits), sum(clicks), sum(conversions), sum(revenue), sum(cost)'
        f' from "{schema}"."campaign_report"').fetchone()
    out["report"] = [str(v) if v is not None else "0" for v in row]
if "conversions" in tables:
    row = con.execute(f'select count(*), sum(revenue) from "{schema}"."conversions"').fetchone()
    out["conversions"] = [str(v) if v is not None else "0" for v in row]
print(json.dumps(out))
"""


def log_events(lines: Any) -> Any:
    """Parsed JSON log lines (other lines come back as {"event": line})."""
    for line in lines:
        text = line.rstrip("\n")
        if not text:
            continue
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            yield {"event": text}
            continue
        if isinstance(event, dict):
            yield event


def progress() -> int:
    """Echo the interesting lines of Meltano's JSON log."""
    for event in log_events(sys.stdin):
        name = str(event.get("name") or event.get("string_id") or "meltano")
        level = str(event.get("level") or "info")
        text = str(event.get("event") or "")
        if text == "METRIC" or not text:
            continue
        interesting = (
            level in ("warning", "error", "critical")
            or name == "meltano"
            or text.startswith(("Beginning sync of", "Loading ", "Traceback"))
            or "Error" in text
        )
        if interesting:
            stamp = str(event.get("timestamp") or "")[11:19]
            print(f"{stamp} {level:<7} {name:<14} {text}"[:240], flush=True)
    return 0


def tap_record_counts(log: Path) -> dict[str, int]:
    """Records per stream, from the tap's `record_count` metrics in the JSON log."""
    counts: dict[str, int] = defaultdict(int)
    with log.open(encoding="utf-8") as lines:
        for event in log_events(lines):
            info = event.get("metric_info")
            if not isinstance(info, dict) or info.get("metric") != "record_count":
                continue
            if event.get("string_id", "tap-voluum") != "tap-voluum":
                continue
            stream = (info.get("tags") or {}).get("stream")
            if stream:
                counts[stream] += int(info.get("value") or 0)
    return dict(counts)


def read_duckdb(python: Path, path: Path) -> dict[str, Any]:
    """Row counts and totals, read by the target-duckdb plugin's Python."""
    result = subprocess.run(
        [str(python), "-c", QUERY_DUCKDB, str(path), SCHEMA],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        sys.exit(f"could not read {path}:\n{result.stderr}")
    return json.loads(result.stdout)


def money(value: Any) -> str:
    amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{amount:,.2f}"


def count(value: Any) -> str:
    return f"{int(Decimal(str(value))):,}"


def sandbox_totals(seed: int, start: date, days: int) -> dict[str, int]:
    """The sandbox's own totals over every day of its data (UTC), from the raw events."""
    from voluum_sandbox import Dataset

    dataset = Dataset(seed=seed, start=start, days=days)
    begin = datetime.combine(start, datetime.min.time())
    return dataset.truth_totals(begin, begin + timedelta(days=days), tz="UTC")


def summary(args: argparse.Namespace) -> int:
    """Print the summary; 1 when a table's rows differ from the tap's records."""
    found = read_duckdb(args.duckdb_python, args.duckdb)
    records = tap_record_counts(args.log)
    bad = 0
    print()
    print("=" * 72)
    print(f"tap-voluum demo: meltano run tap-voluum target-duckdb took {args.seconds} s")
    print(f"sandbox data: {args.days} days from {args.start} (UTC), seed {args.seed}")
    print(f"DuckDB file: {args.duckdb}")
    print("=" * 72)
    print(f"{'table':<28}{'rows in DuckDB':>16}{'records by tap':>16}")
    for stream in sorted(set(found["rows"]) | set(records)):
        rows = found["rows"].get(stream)
        wrote = records.get(stream)
        ok = rows is not None and rows == wrote
        bad += not ok
        shown_rows = "no table" if rows is None else f"{rows:,}"
        shown_wrote = "-" if wrote is None else f"{wrote:,}"
        print(f"{stream:<28}{shown_rows:>16}{shown_wrote:>16}  {'ok' if ok else 'MISMATCH'}")
    print(f"{'total':<28}{sum(found['rows'].values()):>16,}{sum(records.values()):>16,}")

    if found.get("report"):
        visits, clicks, conversions, revenue, cost = found["report"]
        truth = sandbox_totals(args.seed, args.start, args.days)
        cents = Decimal(100)
        pairs = (
            ("visits", count(visits), count(truth["visits"])),
            ("clicks", count(clicks), count(truth["clicks"])),
            ("conversions", count(conversions), count(truth["conversions"])),
            ("revenue (USD)", money(revenue), money(Decimal(truth["revenue_cents"]) / cents)),
            ("cost (USD)", money(cost), money(Decimal(truth["cost_cents"]) / cents)),
        )
        print()
        print("campaign_report totals vs the sandbox's own numbers (all its days):")
        print(f"{'':<28}{'DuckDB':>16}{'sandbox':>16}")
        for label, ours, theirs in pairs:
            note = "ok" if ours == theirs else "differs (start_date, or a partial day)"
            print(f"{label:<28}{ours:>16}{theirs:>16}  {note}")
    if found.get("conversions"):
        rows, revenue = found["conversions"]
        print(
            f"conversions table (by postback time): {count(rows)} rows, "
            f"revenue {money(revenue)} USD"
        )
    print("=" * 72)
    if bad:
        print(f"{bad} table(s) do not hold one row per record the tap wrote", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("progress", help="filter meltano --log-format=json output (stdin)")
    report = sub.add_parser("summary", help="compare DuckDB with the tap's records")
    report.add_argument("--duckdb", type=Path, required=True)
    report.add_argument("--duckdb-python", type=Path, required=True)
    report.add_argument("--log", type=Path, required=True, help="meltano --log-format=json output")
    report.add_argument("--seed", type=int, required=True)
    report.add_argument("--start", type=date.fromisoformat, required=True)
    report.add_argument("--days", type=int, required=True)
    report.add_argument("--seconds", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "progress":
        try:
            return progress()
        except KeyboardInterrupt:
            return 130
    return summary(args)


if __name__ == "__main__":
    sys.exit(main())
