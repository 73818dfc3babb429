"""``voluum-sandbox``: serve a deterministic Voluum-compatible API until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from types import FrameType

from .data import Dataset
from .dialects import DIALECTS, parse_dialects
from .formats import instant_ms
from .range_cap import DEFAULT_WORDING, RANGE_CAP_WORDINGS
from .server import RATE_LIMIT_SCOPES, SandboxServer

FAULT_RATE_KINDS = ("500", "502_html", "503", "reset", "burst_429")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the ``voluum-sandbox`` command."""
    p = argparse.ArgumentParser(
        prog="voluum-sandbox", description="Local Voluum-compatible API with deterministic data."
    )
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 = any free port")
    p.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first UTC day of data, YYYY-MM-DD (default: --days days ending today)",
    )
    p.add_argument("--days", type=int, default=60, help="days of traffic (default 60)")
    p.add_argument("--campaigns", type=int, default=12, help="number of campaigns (default 12)")
    p.add_argument(
        "--events-per-campaign-hour", type=int, default=3, help="traffic events per campaign-hour"
    )
    p.add_argument("--zones", type=int, default=40, help="distinct customVariable1 values")
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument(
        "--rate-limit", type=int, default=15, help="requests per token per second; 0 disables"
    )
    p.add_argument(
        "--rate-limit-scope",
        default="token",
        choices=RATE_LIMIT_SCOPES,
        help="token: each token its own --rate-limit; address: one budget per client address",
    )
    p.add_argument(
        "--accounts",
        type=int,
        default=1,
        metavar="K",
        help="serve K accounts (seeds --seed, --seed + 1, ...), each with its own credentials",
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help=f"probability that a data request fails, shared by {', '.join(FAULT_RATE_KINDS)}",
    )
    p.add_argument(
        "--dialect",
        dest="dialects",
        action="append",
        default=[],
        choices=DIALECTS,
        metavar="NAME",
        help=f"play this reading of the API (repeatable; one of: {', '.join(DIALECTS)})",
    )
    p.add_argument(
        "--lose-row-day",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="campaign x day reports silently lose their first row of this day",
    )
    p.add_argument(
        "--range-cap",
        type=int,
        default=None,
        metavar="N",
        help="/report and /report/conversions refuse windows over N days (400); 0 = off",
    )
    p.add_argument(
        "--range-cap-wording",
        default=DEFAULT_WORDING,
        choices=tuple(RANGE_CAP_WORDINGS),
        help=f"wording of the --range-cap refusal (default {DEFAULT_WORDING})",
    )
    p.add_argument(
        "--now",
        default=None,
        metavar="INSTANT",
        help="the sandbox clock, ISO-8601 (e.g. 2026-03-01T06:00:00Z); later data is invisible",
    )
    p.add_argument(
        "--restatements",
        type=float,
        default=0.0,
        metavar="RATE",
        help="play a Voluum that restates its past (1 = the usual density; default 0 = off)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; contradictory dialects are a usage error (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parse_dialects(args.dialects)
    except ValueError as exc:
        parser.error(str(exc))
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if args.range_cap is not None and args.range_cap < 0:
        parser.error("--range-cap must not be negative")
    if args.restatements < 0:
        parser.error("--restatements must not be negative")
    if args.now is not None:
        try:
            instant_ms(args.now, "--now")
        except ValueError as exc:
            parser.error(str(exc))
    return args


def faults_from_args(args: argparse.Namespace) -> dict[str, object] | None:
    """The ``faults`` knob of ``--fault-rate``: the rate split evenly over its kinds."""
    if args.fault_rate <= 0:
        return None
    return {k: args.fault_rate / len(FAULT_RATE_KINDS) for k in FAULT_RATE_KINDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; prints credentials and the URL on start."""
    args = parse_args(argv)
    datasets = [
        Dataset(
            seed=args.seed + i,
            start=args.start,
            days=args.days,
            campaigns=args.campaigns,
            events_per_campaign_hour=args.events_per_campaign_hour,
            zones=args.zones,
            restatements=args.restatements,
        )
        for i in range(args.accounts)
    ]
    server = SandboxServer(
        accounts=datasets,
        rate_limit_scope=args.rate_limit_scope,
        port=args.port,
        latency=args.latency,
        rate_limit=args.rate_limit if args.rate_limit > 0 else None,
        faults=faults_from_args(args),
        dialects=args.dialects,
        lose_row_day=args.lose_row_day,
        range_cap=args.range_cap,
        range_cap_wording=args.range_cap_wording,
        now=args.now,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    try:
        print(f"access_id={server.access_id}")
        print(f"access_key={server.access_key}")
        print(f"email={server.email}")
        print(f"password={server.password}")
        print(f"url={server.url}")
        if len(server.accounts) > 1:
            for acc in server.accounts:
                n = acc.index + 1
                print(f"account_{n}_access_id={acc.access_id}")
                print(f"account_{n}_access_key={acc.access_key}")
                print(f"account_{n}_email={acc.email}")
                print(f"account_{n}_password={acc.password}")
            print("accounts=" + json.dumps([acc.credentials for acc in server.accounts]))
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
