"""tap-voluum: settings, their checks, and stream discovery."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_voluum.accounts import ACCOUNT_NAME_PATTERN
from tap_voluum.client import VoluumClient, extract_list
from tap_voluum.errors import (
    DeniedEndpointError,
    VoluumAuthError,
    VoluumError,
    fail,
    one_line_errors,
)
from tap_voluum.restated_days import STATE_KEY as RESTATED_KEY
from tap_voluum.restated_days import RestatedDays
from tap_voluum.run import SyncRun
from tap_voluum.sdk_compat import WholeLineWriter, build_tap, print_about, tap_entry
from tap_voluum.settings import check_settings
from tap_voluum.settled import settled_lines
from tap_voluum.streams.base import VoluumStream, keyed_by_account
from tap_voluum.streams.columns import ReportColumnsStream
from tap_voluum.streams.conversions import ConversionsStream
from tap_voluum.streams.entities import entity_streams
from tap_voluum.streams.event_log import EventLogStream
from tap_voluum.streams.live import LiveClicksStream, LiveVisitsStream
from tap_voluum.streams.reconcile import MODES as RECONCILE_MODES
from tap_voluum.streams.reports import (
    BUILT_IN_REPORTS,
    MAX_GROUP_LEVELS,
    STREAM_NAME_PATTERN,
    ReportStream,
    custom_report_definitions,
)
from tap_voluum.streams.sync_ahead import SyncAhead

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_PAGE_SIZE = 100_000

T = TypeVar("T")

CUSTOM_REPORT = th.ObjectType(
    th.Property(
        "name",
        th.StringType(pattern=STREAM_NAME_PATTERN),
        required=True,
        description="Stream name (snake_case: lower-case letters, digits and _).",
    ),
    th.Property(
        "group_by",
        th.ArrayType(th.StringType),
        required=True,
        description="1 to 3 Voluum dimensions, e.g. campaign, offer, country, custom-variable-1.",
    ),
    th.Property(
        "columns",
        th.ArrayType(th.StringType),
        description="Metric columns to keep (default: every known metric).",
    ),
    th.Property(
        "granularity",
        th.StringType,
        default="day",
        allowed_values=["day", "hour"],
        description="Time bucket of each row.",
    ),
)


ACCOUNT = th.ObjectType(
    th.Property(
        "name",
        th.StringType(pattern=ACCOUNT_NAME_PATTERN),
        required=True,
        description="The account's name in every record (1-64 letters, digits, - and _).",
    ),
    th.Property("access_id", th.StringType, required=True, description="Access key ID."),
    th.Property("access_key", th.StringType, required=True, secret=True, description="Access key."),
    th.Property(
        "workspace_ids", th.ArrayType(th.StringType), description="This account's workspaces."
    ),
    th.Property(
        "currency", th.StringType(pattern="^[A-Z]{3}$"), description="This account's currency."
    ),
    th.Property("timezone", th.StringType, description="This account's report time zone."),
    th.Property("start_date", th.DateTimeType, description="This account's first day."),
)


class TapVoluum(Tap):
    """Singer tap for the Voluum ad-tracking API."""

    name = "tap-voluum"
    message_writer_class = WholeLineWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "access_id",
            th.StringType,
            description=(
                "Access key ID, generated in Voluum (Profile → Security → Access keys). "
                "One account; for several, use accounts instead."
            ),
        ),
        th.Property(
            "access_key",
            th.StringType,
            secret=True,
            description="Secret access key (shown once, when the key is generated).",
        ),
        th.Property(
            "account_name",
            th.StringType(pattern=ACCOUNT_NAME_PATTERN),
            description=(
                "Name of the one account access_id/access_key give, in every record's "
                "`account` (default: default)."
            ),
        ),
        th.Property(
            "accounts",
            th.ArrayType(ACCOUNT),
            description=(
                "Several Voluum accounts read in one run: name, access_id, access_key, and "
                "optionally their own workspace_ids, currency, timezone, start_date."
            ),
        ),
        th.Property(
            "rate_limit_scope",
            th.StringType,
            default="run",
            allowed_values=["run", "account"],
            description=(
                "run: max_requests_per_second for all accounts together (Voluum counts "
                "requests per address); account: for each account on its own."
            ),
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.voluum.com",
            description="Voluum API root. HTTPS; plain http only on loopback (the sandbox).",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            required=True,
            description="Earliest data to sync: its date is the first local day read.",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Read data before this wall-clock time in `timezone` (default: now).",
        ),
        th.Property(
            "timezone",
            th.StringType,
            default="UTC",
            description="IANA time zone of report days and hours (Voluum's `tz`).",
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType(exclusive_minimum=0),
            default=14,
            description=(
                "Most requests started in any one second (Voluum allows 15: keep one below, "
                "as a request that arrives late may count in the next second)."
            ),
        ),
        th.Property(
            "lookback_days",
            th.IntegerType(minimum=0),
            default=1,
            description=(
                "Days before the bookmark's day read again on every sync, whatever changed. "
                "Older days are read again when Voluum changed them (restatement_days)."
            ),
        ),
        th.Property(
            "restatement_days",
            th.IntegerType(minimum=0, maximum=731),
            default=90,
            description=(
                "How far back, in days, each sync checks which past days Voluum changed "
                "(late conversions, uploads, cost updates) and reads those days again in "
                "every report stream; one request per 31 days per account. 0 turns it off."
            ),
        ),
        th.Property(
            "report_window_days",
            th.IntegerType(minimum=1, maximum=366),
            description=(
                "Local days per report request. Unset (the default): automatic, up to 31 "
                "days, narrower when the days hold many rows (about 200,000 a request)."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
            default=10_000,
            description="Rows per report request (`limit`), 1 to 100000.",
        ),
        th.Property(
            "currency",
            th.StringType(pattern="^[A-Z]{3}$"),
            description="ISO currency code for money columns (Voluum's `currency`).",
        ),
        th.Property(
            "conversion_time_mode",
            th.StringType,
            allowed_values=["VISIT", "CONVERSION"],
            description="Attribute conversions to the visit time or to the postback time.",
        ),
        th.Property(
            "workspace_ids",
            th.ArrayType(th.StringType),
            description="Only these workspaces (Voluum's `workspaces`).",
        ),
        th.Property(
            "custom_reports",
            th.ArrayType(CUSTOM_REPORT),
            description="Extra report streams: name, group_by (1-3 levels), columns, granularity.",
        ),
        th.Property(
            "reconcile",
            th.StringType,
            default="warn",
            allowed_values=list(RECONCILE_MODES),
            description=(
                "Check every report window against Voluum's totals: warn, fail (the stream "
                "stops before that window's state) or off."
            ),
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=64),
            default=16,
            description="Report requests in flight at once (all share the rate limit).",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1),
            default=120,
            description="Seconds to wait for one answer before retrying.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0, maximum=100),
            default=6,
            description="Retries of a failing request (429, 5xx, resets, bad JSON) before failing.",
        ),
    ).to_dict()
    # What `th.ArrayType` cannot say: a custom report groups by one to three dimensions.
    config_jsonschema["properties"]["custom_reports"]["items"]["properties"]["group_by"].update(
        {"minItems": 1, "maxItems": MAX_GROUP_LEVELS}
    )

    dynamic_catalog = True  # discovery reads the account's columns from /column/info

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._strict = kwargs.get("validate_config", True)
        self.run = SyncRun()
        self._kept_prints: Any = None
        self._client: VoluumClient | None = None
        super().__init__(*args, **kwargs)
        if self._strict:
            check_settings(self.config)
        self.run.ahead = SyncAhead(self, int(self.config.get("max_concurrency") or 8))
        self.run.restated = RestatedDays(self, self.run.readings, self._kept_prints)

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """The SDK's bookmarks, and the day prints of the last sync (`restated_days`)."""
        super().load_state(state)
        self._kept_prints = tap_entry(state, RESTATED_KEY)

    @override
    def discover_streams(self) -> list[Stream]:
        """Entities, built-in and custom reports, conversions, live events and the event log.

        Every stream carries `account`, first in its key; report columns are every
        account's (`/column/info` read for each).
        """
        fixed: tuple[type[VoluumStream], ...] = (
            ReportColumnsStream,
            ConversionsStream,
            LiveClicksStream,
            LiveVisitsStream,
            EventLogStream,
        )
        streams: list[Stream] = [*entity_streams(self), *(cls(tap=self) for cls in fixed)]
        taken = {stream.name for stream in streams} | {d.name for d in BUILT_IN_REPORTS}
        custom = custom_report_definitions(self.config.get("custom_reports") or [], taken)
        columns, labels = self.account_columns() if self._strict else ({}, {})
        self.run.readings.column_keys = frozenset(columns) if columns else None
        streams += [ReportStream(self, d, columns, labels) for d in (*BUILT_IN_REPORTS, *custom)]
        for stream in streams:
            assert isinstance(stream, VoluumStream)
            keyed_by_account(stream)
        return streams

    def account_columns(self) -> tuple[dict[str, str], dict[str, str]]:
        """Every account's report columns (key -> type) and labels (key -> label).

        A label that differs between accounts is given per account ("north: LEAD; south:
        FTD"). An account whose key Voluum rejects is left out (and named) when there are
        others.
        """
        columns: dict[str, str] = {}
        named: dict[str, dict[str, str]] = {}
        found: dict[str, list[dict]] = self.for_each_account(self.column_mappings)
        for name, mappings in found.items():
            for m in mappings:
                columns.setdefault(str(m["key"]), str(m.get("type") or ""))
                if m.get("label"):
                    named.setdefault(str(m["key"]), {})[name] = str(m["label"])
        labels = {
            key: next(iter(by.values()))
            if len(set(by.values())) == 1
            else "; ".join(f"{account}: {label}" for account, label in by.items())
            for key, by in named.items()
        }
        return columns, labels

    @property
    def client(self) -> VoluumClient:
        """The tap's own HTTP session, rate limiter and access-key session (never shared)."""
        if self._client is None:
            check_settings(self.config)
            self._client = VoluumClient(self.config)
        return self._client

    def column_mappings(self, account: str | None = None) -> list[dict]:
        """Voluum's column dictionary (`/column/info`), or [] when this account has none.

        A refusal (4xx) or an API that keeps failing (5xx) leaves the built-in types, with
        a warning; a rejected key or an unreachable API ends the run.
        """
        try:
            payload = self.client.get_json("/column/info", account=account)
        except (VoluumAuthError, DeniedEndpointError):
            raise
        except (VoluumError, RetriableAPIError) as exc:
            self.logger.warning(
                "column types from /column/info unavailable (%s): using built-in types", exc
            )
            return []
        mappings = extract_list(payload, "columnMappings")
        return [m for m in mappings if isinstance(m, dict) and m.get("key")]

    def log_in(self) -> None:
        """Open every account's session before any data request.

        A rejected key ends the run (one account), or that account's work (several).
        """
        sessions = self.client.sessions.by_account
        self.for_each_account(lambda name: sessions[name].token())

    def for_each_account(self, call: Callable[[str], T]) -> dict[str, T]:
        """`call(account)` for every account still going, side by side, in account order.

        A rejected key ends the run (one account), or that account's work (several).
        """
        names = [n for n in self.client.accounts if n not in self.run.accounts_failed]
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), 8))) as pool:
            futures = {name: pool.submit(call, name) for name in names}
        done: dict[str, T] = {}
        for name, future in futures.items():
            try:
                done[name] = future.result()
            except VoluumAuthError as exc:
                if len(self.client.accounts) == 1:
                    raise
                self.run.fail_account(name, "access key rejected", self.logger)
                self.logger.debug("%s: %s", name, exc)
        return done

    def test_connection(self) -> None:
        """Log in, read one record of every stream, and end with one line saying so."""
        self.log_in()
        streams = [s for s in self.streams.values() if isinstance(s, VoluumStream)]
        for stream in streams:
            stream.selected = True
            stream.connection_test = True
        for stream in streams:
            for context in self._test_contexts(stream):
                next(iter(stream.get_records(context)), None)
        self.say_settled()
        if self.run.failed:
            fail(f"connection test failed: {self.run.summary()}")
        self.logger.info("connection test passed: logged in, %d streams readable", len(streams))

    def say_settled(self) -> None:
        """Log what the run settled on for this Voluum (`settled`), one INFO line each."""
        reports = [s for s in self.streams.values() if isinstance(s, ReportStream)]
        dimensions = {d.group_by: d for s in reports for d in s.definition.dimensions}
        readings, restated = self.run.readings, self.run.restated
        lines = settled_lines(
            readings, dimensions.values(), self.client.accounts, restated, self.config
        )
        for line in lines:
            self.logger.info("%s", line)

    def _test_contexts(self, stream: VoluumStream) -> list[dict]:
        """Each account's context; a child's from its parent's first record (a campaign)."""
        accounts = [{"account": name} for name in self.client.accounts]
        parent_type = stream.parent_stream_type
        if parent_type is None:
            return accounts
        parent = next(s for s in self.streams.values() if isinstance(s, parent_type))
        assert isinstance(parent, VoluumStream)
        contexts: list[dict] = []
        for account in accounts:
            if parent.failed_for(account):
                continue
            for record in parent.get_records(account):
                children = parent.generate_child_contexts(record, account) or ()
                contexts.extend(dict(c or {}) for c in children)
                break
        return contexts[: len(accounts)]

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """Sync as `Tap.invoke` does; failed streams named last, every error in one line.

        One stream's failure is that stream's alone (`VoluumStream.isolated`): the others
        finish and their state is kept, then the run ends in one line naming what failed.
        """
        with one_line_errors():
            print_about(cls, about=about, about_format=about_format)
            cls.print_version(print_fn=cls.logger.info)
            tap = build_tap(cls, config=config, state=state, catalog=catalog)
            tap.log_in()
            try:
                tap.sync_all()
            except SystemExit as exc:
                # The SDK's SIGTERM/SIGINT handler writes the state, then exits 0: a run
                # cut short must not look like a finished one to Meltano.
                if exc.code in (0, None):
                    fail("stopped by a signal; the state written so far is valid: run again")
                raise
            tap.say_settled()
            if tap.run.failed:
                fail(tap.run.summary())

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """`--discover`, a rejected key or a bad setting ending in one line."""
        with one_line_errors():
            super().cb_discover(ctx, param, value)

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: our connection test (one closing line); errors end in one line.

        `Tap.run_connection_test` is final and syncs with a record limit; tap-voluum's
        reads a little of every stream and account, writes nothing, and names failures.
        """
        with one_line_errors():
            if value != CliTestOptionValue.All.value:
                super().cb_test(ctx, param, value)  # disabled, or `--test=schema`
                return
            build_tap(cls, config=ctx.params.get("config")).test_connection()
        ctx.exit()


if __name__ == "__main__":
    TapVoluum.cli()
