"""Windowed streams: a report-like endpoint read window by window, records in window order.

The read is one method, `WindowedStream.get_records`, top to bottom: the stream's range
(`window_plan`: from `start_date`, or the bookmark's day minus `lookback_days`, to
`end_date` or now) is cut into windows as wide as the data allows (`windows.WindowPlan`);
their pages are asked for concurrently and handed out in order (`pages.PageScheduler`,
planned ahead by the run's `sync_ahead.SyncAhead`); each page's rows become records
(`record_path.RecordPath`), are checked against Voluum's `totalRows` and `totals`
(`reconcile`), and after each whole window the bookmark moves to that window's last
bucket and a STATE goes out. Records move no bookmark on their own (`sdk_compat.
window_hooks`): a bookmark never covers a window not fully written.

A stream says what it asks for (`window_params`, `sort_column`, `requested_columns`) and
what a row becomes (`completer`); everything else is the same for every windowed stream.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from tap_voluum.accounts import account_of
from tap_voluum.errors import StreamFailure, VoluumAPIError
from tap_voluum.remedies import Remedies
from tap_voluum.sdk_compat import (
    RecordWriter,
    bookmark_ahead,
    move_bookmark,
    peek_context_state,
    prepare_request,
    request_page,
    sdk_path_reason,
    window_hooks,
    write_state,
)
from tap_voluum.shapes import RowDecoder
from tap_voluum.stamps import RowStamp, announce_changes
from tap_voluum.streams.base import VoluumStream
from tap_voluum.streams.pages import Page, PageToken, pages_of_alone
from tap_voluum.streams.reconcile import Reconciler
from tap_voluum.streams.record_path import RecordPath, add_up
from tap_voluum.streams.tally import Progress, Tally
from tap_voluum.streams.windows import (
    Window,
    WindowPlan,
    aware,
    parse_setting_datetime,
    range_end,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import requests
    from singer_sdk.helpers.types import Context

MAX_READING_CHANGES = 12
"""Changes of readings one request may go through before its stream gives up."""
LOCAL_FIELDS = frozenset({"account", "timeZone", "currency"})
"""Fields the tap fills in itself; every other schema field is copied from Voluum."""


@window_hooks
class WindowedStream(VoluumStream):
    """A report-like endpoint read in date windows, incremental on a date-time key."""

    is_sorted = True
    check_sorted = False  # the lookback re-reads days before the bookmark on purpose
    decode_rows_later = True
    # Rows are copied field by field from Voluum's JSON, whose types already match the
    # schema: the SDK's per-record type conformance would only repeat that work.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    ROW_SETTINGS: ClassVar[tuple[str, ...]] = ("timezone", "currency", "workspace_ids")
    """The settings that shape every row (not paging, concurrency, retries): the stamp."""
    local_fields: ClassVar[frozenset[str]] = LOCAL_FIELDS
    non_null_keys: ClassVar[tuple[str, ...]] = ()
    completer_fields: ClassVar[tuple[str, ...]] = ()
    """Row fields the completer reads, selected or not."""
    distinct_rows: ClassVar[bool] = False
    """Rows are unique by primary key (report groups): repeats across pages are dropped."""
    columns_listed_only: ClassVar[bool] = False
    """Ask only for columns `/column/info` listed (report columns)."""
    restates: ClassVar[bool] = False
    """Reads again the past days Voluum restated (`restated_days`; report streams)."""
    record_writer: RecordWriter | None = None
    """Writes the records exactly as the SDK would, chosen once per read; None: the SDK."""

    # --- the range -------------------------------------------------------------------

    def tz(self, context: Context | None) -> ZoneInfo:
        """The report time zone (`timezone`) of the context's account."""
        return ZoneInfo(str(self.settings(context)["timezone"]))

    @property
    def window_days(self) -> int | None:
        """Local days per window: the user's `report_window_days`, or None (automatic)."""
        days = self.config.get("report_window_days")
        return int(days) if days else None

    @property
    def page_size(self) -> int:
        """Rows asked for per request (`page_size`); Voluum may serve fewer."""
        return int(self.config["page_size"])

    def row_stamp(self, context: Context | None) -> RowStamp:
        """The settings that shape this stream's rows for the context's account."""
        return RowStamp.of(self.settings(context), self.ROW_SETTINGS)

    def window_plan(self, context: Context | None) -> WindowPlan:
        """The windows this sync reads, from `start_date`'s day or the bookmark's.

        The bookmark is the last bucket of the last window written whole, so everything
        before it was read; `lookback_days` re-reads the days before it, and the past days
        Voluum changed since the last sync are read again too (`restated_days`). A
        bookmark made under other settings (`stamps`) counts for nothing. `--test` reads
        the last hour alone.
        """
        tz = self.tz(context)
        end = range_end(tz, self.config.get("end_date"))
        first = parse_setting_datetime(str(self.settings(context)["start_date"])).date()
        _, bookmark = resume_point(self, context)
        if bookmark:
            day = bookmark.astimezone(tz).date()
            first = max(first, day - timedelta(days=int(self.config["lookback_days"])))
        restated: tuple[date, ...] = ()
        if self.connection_test:
            first = max(first, (end - timedelta(hours=1)).date())
        elif self.restates:
            restated = self.run.restated.days(self, context)
        plan = WindowPlan(
            first,
            end,
            days=self.window_days,
            widest=self.run.readings.widest_span,
            restated=restated,
        )
        plan.label = self.label(context)
        return plan

    def bookmark_after(self, context: Context | None, window: Window) -> str:
        """The bookmark once `window` is written: the start of its last bucket."""
        return aware(window.last_hour, self.tz(context)).isoformat()

    def resize(
        self, plan: WindowPlan, window: Window, first: Page | None, error: BaseException | None
    ) -> list[Window] | None:
        """The parts that replace a window before it is read (`WindowPlan.resize`), or None.

        With the first page of the stream's first window in, the plan line goes out.
        """
        if first is not None and not plan.described:
            plan.described = True
            rate = float(self.config["max_requests_per_second"])
            served = first.row_count if first.row_count < (first.total_rows or 0) else 0
            line = plan.describe(served, self.page_size, rate)
            self.logger.info("%s: plan: %s", plan.label, line)
        total = None if first is None else first.total_rows
        parts, why, warning = plan.resize(window, total, error, self.run.readings.refuse_span)
        if why:
            self.logger.log(logging.WARNING if warning else logging.INFO, "%s: %s", plan.label, why)
        return parts

    # --- requests --------------------------------------------------------------------

    def sort_column(self) -> str | None:
        """The column pages are sorted by, for a stable order across pages."""
        return None

    def window_params(self, context: Context | None, window: Window) -> dict[str, Any]:
        """Query parameters for one window (without paging): range, zone, account options."""
        settings = self.settings(context)
        readings = self.run.readings
        params: dict[str, Any] = {**window.params, "tz": str(settings["timezone"])}
        params["include"] = "ALL"
        columns = readings.columns(
            self.path, self.requested_columns(), listed_only=self.columns_listed_only
        )
        if columns:
            params["columns"] = columns
        sort = readings.sort(self.sort_column())
        if sort:
            params["sort"] = sort
            params["direction"] = "ASC"
        if settings.get("currency"):
            params["currency"] = settings["currency"]
        if settings.get("workspace_ids"):
            params["workspaces"] = list(settings["workspace_ids"])
        return params

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """The window's parameters plus `limit`/`offset`."""
        assert isinstance(next_page_token, PageToken)
        params = self.window_params(context, next_page_token.window)
        params["limit"] = self.page_size
        params["offset"] = next_page_token.offset
        return params

    @cached_property
    def remedies(self) -> Remedies:
        """What this stream may change when Voluum refuses a parameter reading."""
        return Remedies.of(self, protected=self.primary_keys or ())

    def fetch_page(self, context: Context | None, token: PageToken) -> Page:
        """One page, through the SDK's retries; a refused parameter reading is changed.

        The one fetch of every windowed request (pages, probes, day-by-day checks).
        """
        readings = self.run.readings
        counter = self.run.ahead.counter(self)
        for _ in range(MAX_READING_CHANGES):
            version = readings.version
            prepared = prepare_request(self, context=context, token=token)
            try:
                page = self.send(prepared, context, token, counter)
            except VoluumAPIError as exc:
                if not exc.is_refused_parameter:
                    raise
                params = self.get_url_params(context, token)

                def probe(
                    spelling: str,
                    params: dict[str, Any] = params,
                    prepared: requests.PreparedRequest = prepared,
                ) -> bool:
                    return self.probe(prepared, params, spelling, context, token)

                with readings.lock:
                    if readings.version == version and not self.remedies.apply(params, exc, probe):
                        raise StreamFailure(f"{exc} (no other reading left to try)") from exc
                continue
            self.remedies.accepted()
            return page
        raise StreamFailure(f"{self.path}: Voluum kept refusing the parameters")

    def send(
        self,
        prepared: requests.PreparedRequest,
        context: Context | None,
        token: PageToken,
        counter: Any,
    ) -> Page:
        """Send one prepared page request (retried, counted); Voluum answered it."""

        def read(response: requests.Response) -> Page:
            head = self.client.read_page(response)
            rows = len(head.rows)
            if rows < self.page_size and token.offset + rows < (head.totalRows or 0):
                self.run.readings.served(rows)  # Voluum's own page cap
            return Page(token, response.content, head.totalRows, rows, head.totals)

        return request_page(
            self, prepared_request=prepared, context=context, counter=counter, read=read
        )

    def probe(
        self,
        prepared: requests.PreparedRequest,
        params: dict[str, Any],
        spelling: str,
        context: Context | None,
        token: PageToken,
    ) -> bool:
        """Whether Voluum accepts `groupBy=<spelling>` (a one-row request, nothing else)."""
        asked = {**token.window.params, "tz": params["tz"], "groupBy": spelling}
        one = self.build_prepared_request(
            method="GET",
            url=str(prepared.url).split("?")[0],
            params={**asked, "limit": 1, "offset": 0},
            headers=dict(prepared.headers),
        )
        try:
            self.send(one, context, token, self.run.ahead.counter(self))
        except VoluumAPIError as exc:
            if exc.is_refused_parameter:
                return False
            raise
        return True

    # --- records ---------------------------------------------------------------------

    @cached_property
    def api_fields(self) -> tuple[str, ...]:
        """The selected schema fields that come from Voluum's rows (which carry many more)."""
        return tuple(
            field
            for field in self.effective_schema["properties"]
            if field not in self.local_fields and self.mask.get(("properties", field), True)
        )

    def requested_columns(self) -> list[str]:
        """`columns`: the fields wanted from Voluum."""
        return list(self.api_fields)

    def completer(self, context: Context | None, window: Window) -> Callable[[dict], None]:
        """Return what fills a record's own fields from its Voluum values (bucket, times)."""
        raise NotImplementedError

    def make_reconciler(self) -> Reconciler | None:
        """What checks each window against Voluum's totals (report streams only)."""
        return None

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Records come out of the record path whole: fitted, stamped with their account."""
        return row

    # --- the ordered, concurrent read ------------------------------------------------

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Every window's records in order; after each whole window, its bookmark and STATE.

        A window of restated days before the range (`WindowPlan.restated`) gives the
        records of those days alone, whole, and moves no bookmark.
        """
        if not self.failed_for(context):
            yield from self.read_windows(context)
        if self.restates and not self.connection_test:
            self.run.restated.unit_done(self, context)

    def read_windows(self, context: Context | None) -> Iterable[dict]:  # noqa: PLR0912 - one loop
        """The read, top to bottom: windows, pages, records, checks, bookmark."""
        with self.isolated(context):
            stamp = self.row_stamp(context)
            changes, since = resume_point(self, context)
            scheduler = self.run.ahead.scheduler(self, context)
            label = self.label(context)
            if scheduler is None:
                self.logger.info("%s: nothing to read, the range is empty", label)
                return
            announce_changes(self.logger, label, changes, scheduler.windows.start.date(),
                             self.run.notices)  # fmt: skip
            path = record_path(self, context)
            reconciler = self.make_reconciler()
            keys = tuple(self.primary_keys or ())
            plan = scheduler.windows
            progress = Progress(self.logger, label, scheduler.windows_left)
            self.record_writer = writer = record_writer(self)
            with self.run.ahead.reading(self, scheduler):
                try:
                    for window, pages in scheduler:
                        tally = Tally(window, seen=set() if self.distinct_rows else None)
                        if reconciler:
                            reconciler.start_window()
                        for page in pages:
                            tally.add_page(page)
                            if writer:
                                writer.new_page()
                            for chunk in path.chunks(window, page):
                                records = tally.fresh(chunk, keys)
                                if reconciler:
                                    add_up(reconciler, records)
                                if window.start < plan.normal_start:  # restated days only
                                    records = of_wanted_days(records, plan, self.replication_key)
                                yield from records
                                if writer:
                                    writer.flush()
                        tally.check_whole()
                        if reconciler and tally.pages:
                            reconcile(self, context, reconciler, window, tally.totals)
                        progress.window_done(window, tally)
                        if not self.connection_test:
                            bookmark(self, context, window, stamp, since)
                finally:
                    if writer:
                        writer.flush()  # the records of a window cut short too
                    self.record_writer = None
            if reconciler:
                reconciler.summary()


def resume_point(
    stream: WindowedStream, context: Context | None
) -> tuple[list[tuple[str, str, str]], datetime | None]:
    """What changed in the settings since the bookmark, and the bookmark a sync resumes from.

    A bookmark made under other settings (`stamps`) counts for nothing: None.
    """
    changes = stream.row_stamp(context).changes(peek_context_state(stream, context))
    bookmark = None if changes else bookmark_ahead(stream, context)
    return changes, parse_setting_datetime(str(bookmark)) if bookmark else None


def bookmark(
    stream: WindowedStream,
    context: Context | None,
    window: Window,
    stamp: RowStamp,
    since: datetime | None,
) -> None:
    """A window was written whole: its bookmark, stamped with the settings, and a STATE.

    A bookmark never moves back past `since`, the one the sync started from (windows of
    restated days or of the lookback lie before it). With BATCH messages the SDK writes
    STATE after each batch file instead: a window's records may still wait in one.
    """
    value = stream.bookmark_after(context, window)
    if since is not None and datetime.fromisoformat(value) <= since:
        stamp.put(stream.get_context_state(context))  # the same settings: the bookmark stays
        return
    stamp.put(move_bookmark(stream, context, value))
    if stream.get_batch_config(stream.config) is None:
        write_state(stream)


def of_wanted_days(records: list[dict], plan: WindowPlan, key: str | None) -> list[dict]:
    """The records of the days the plan wants (a window over restated days spans others)."""
    if key is None:
        return records
    wants = plan.wants
    return [r for r in records if wants(date.fromisoformat(str(r[key])[:10]))]


def record_path(stream: WindowedStream, context: Context | None) -> RecordPath:
    """How one read's page bodies become records: fields, completion, the tap's own fields."""
    settings = stream.settings(context)
    stamp = {
        "account": stream.client.account(account_of(context)).name,
        "timeZone": str(settings["timezone"]),
        "currency": settings.get("currency"),
    }
    fields = tuple(dict.fromkeys((*stream.api_fields, *stream.completer_fields)))
    return RecordPath(
        RowDecoder(fields, stream.schema, stream.completer_fields),
        non_null=stream.non_null_keys,
        completer=lambda window: stream.completer(context, window),
        unselected=tuple(f for f in stream.completer_fields if f not in stream.api_fields),
        stamp={k: v for k, v in stamp.items() if stream.mask.get(("properties", k), False)},
    )


def record_writer(stream: WindowedStream) -> RecordWriter | None:
    """The writer of the stream's RECORD lines, or None for the SDK's own path."""
    key = (stream.replication_key,) if stream.replication_key else ()
    local = [f for f in LOCAL_FIELDS if stream.mask.get(("properties", f), False)]
    reason = sdk_path_reason(stream, (*stream.api_fields, *local, *key))
    if reason:
        stream.logger.debug("%s: records go through the SDK's writer: %s", stream.name, reason)
        return None
    return RecordWriter(stream)


def reconcile(
    stream: WindowedStream,
    context: Context | None,
    reconciler: Reconciler,
    window: Window,
    totals: dict | None,
) -> None:
    """Check a window against Voluum's totals; a mismatch over days is found day by day."""
    if window.days == 1 or reconciler.matches(totals):
        reconciler.check(f"{window.first_day:%Y-%m-%d}", totals)
        return
    path = record_path(stream, context)
    for day in window.day_windows():
        reconciler.start_window()
        answer = pages_of_alone(lambda token: stream.fetch_page(context, token), day)
        for page in answer:
            for chunk in path.chunks(day, page):
                add_up(reconciler, chunk)
        reconciler.check(f"{day.first_day:%Y-%m-%d}", answer[0].totals if answer else None)
