"""Date windows in the report time zone, fetched concurrently and emitted in order.

A window is `report_window_days` local days, `[start, end)` on whole hours of wall-clock
time in `timezone` (Voluum reads `from`/`to` that way, so a local day may last 23 or 25
hours). Pages of every window go through the page scheduler (`page_scheduler.py`);
records and STATE come out strictly in window order, and a window whose rows do not add
up to Voluum's `totalRows` stops the stream before its STATE, so a bookmark never covers a
window that was not fully written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams.rest import PageContext

from tap_voluum.errors import StreamFailure, VoluumAPIError
from tap_voluum.readings import Readings, mentions
from tap_voluum.sdk_compat import RecordHook, send_request, write_state
from tap_voluum.streams.page_scheduler import Page, PageScheduler, PageToken
from tap_voluum.streams.reconcile import Reconciler
from tap_voluum.streams.record_path import (
    RecordWriter,
    add_up,
    page_decoder,
    records_in_chunks,
    sdk_path_reason,
    unseen,
)
from tap_voluum.streams.sync_ahead import SyncAhead

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_voluum.shapes import RowDecoder

PARAM_FORMAT = "%Y-%m-%dT%H:00:00"
MAX_READING_CHANGES = 12
"""Changes of readings one request may go through before its stream gives up."""


@dataclass(frozen=True)
class Window:
    """`[start, end)` in local wall-clock time, whole hours."""

    start: datetime
    end: datetime
    index: int
    count: int

    @property
    def params(self) -> dict[str, str]:
        """Voluum's `from`/`to` for this window."""
        return {"from": self.start.strftime(PARAM_FORMAT), "to": self.end.strftime(PARAM_FORMAT)}

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}"


if TYPE_CHECKING:
    from typing import TypeAlias

    Remedy: TypeAlias = Callable[[Window, dict[str, Any], VoluumAPIError], bool]
    """A change of reading after Voluum refused a parameter; False when it has none."""


def parse_setting_datetime(value: str) -> datetime:
    """Read a date or date-time setting; the wall-clock part is what counts."""
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))


def ceil_hour(moment: datetime) -> datetime:
    """Round a naive wall-clock time up to the next whole hour."""
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def local_now(tz: ZoneInfo) -> datetime:
    """Now, as naive wall-clock time in `tz`."""
    return datetime.now(timezone.utc).astimezone(tz).replace(tzinfo=None)


def make_windows(first_day: date, end: datetime, days: int) -> list[Window]:
    """Cut `[first_day 00:00, end)` into windows of `days` local days (the last may be short)."""
    starts: list[datetime] = []
    cursor = datetime.combine(first_day, datetime.min.time())
    while cursor < end:
        starts.append(cursor)
        cursor += timedelta(days=days)
    return [
        Window(start, min(start + timedelta(days=days), end), i + 1, len(starts))
        for i, start in enumerate(starts)
    ]


def aware(local: datetime, tz: ZoneInfo) -> datetime:
    """Attach `tz` to a naive wall-clock time (the first of two in a repeated hour)."""
    return local.replace(tzinfo=tz, fold=0)


class WindowedStream(RecordHook, SyncAhead):
    """A report-like endpoint read in date windows, incremental on a date-time key."""

    is_sorted = True
    check_sorted = False  # the lookback re-reads days before the bookmark on purpose
    decode_rows_later = True
    fitted_when_decoded = True
    # Rows are copied field by field from Voluum's JSON, whose types already match the
    # schema: the SDK's per-record type conformance would only repeat that work.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    # --- the range -------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The report time zone (`timezone`)."""
        return ZoneInfo(str(self.config["timezone"]))

    @property
    def window_days(self) -> int:
        """Local days per request window."""
        return int(self.config["report_window_days"])

    def range_end(self) -> datetime:
        """`min(end_date, now)` as local wall-clock time, rounded up to a whole hour."""
        end = ceil_hour(local_now(self.tz))
        if self.config.get("end_date"):
            end = min(
                end, ceil_hour(parse_setting_datetime(self.config["end_date"]).replace(tzinfo=None))
            )
        return end

    def range_start_day(self, context: Context | None) -> date:
        """`start_date`'s day, or the bookmark's day minus the lookback and window overlap.

        The bookmark is the bucket of the last record written; records come in window
        order, so going back `report_window_days - 1` days from its day reaches the start
        of the window that was being written, and `lookback_days` more re-reads late data.
        """
        first = parse_setting_datetime(str(self.config["start_date"])).date()
        starting = self.get_starting_replication_key_value(context)  # max(bookmark, start_date)
        if not starting:
            return first
        day = parse_setting_datetime(str(starting)).astimezone(self.tz).date()
        back = int(self.config["lookback_days"]) + self.window_days - 1
        return max(first, day - timedelta(days=back))

    def windows(self, context: Context | None) -> list[Window]:
        """The windows this sync reads (the last one alone for `--test`)."""
        windows = make_windows(self.range_start_day(context), self.range_end(), self.window_days)
        return windows[-1:] if self.connection_test else windows

    # --- requests --------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Rows asked for per request (`page_size`); Voluum may serve fewer."""
        return int(self.config["page_size"])

    @property
    def readings(self) -> Readings:
        """How this run's Voluum reads parameters (shared by every stream)."""
        return self.run.readings

    reconciler: Reconciler | None = None
    columns_listed_only: ClassVar[bool] = False
    """Ask only for columns `/column/info` listed (report columns)."""

    def sort_column(self) -> str | None:
        """The column pages are sorted by, for a stable order across pages."""
        return None

    def window_params(self, window: Window) -> dict[str, Any]:
        """Query parameters for one window (without paging): range, zone, account options."""
        params: dict[str, Any] = {**window.params, "tz": str(self.config["timezone"])}
        params["include"] = "ALL"
        columns = self.readings.columns(
            self.path, self.requested_columns(), listed_only=self.columns_listed_only
        )
        if columns:
            params["columns"] = columns
        sort = self.readings.sort(self.sort_column())
        if sort:
            params["sort"] = sort
            params["direction"] = "ASC"
        if self.config.get("currency"):
            params["currency"] = self.config["currency"]
        if self.config.get("workspace_ids"):
            params["workspaces"] = list(self.config["workspace_ids"])
        return params

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """The window's parameters plus `limit`/`offset`."""
        assert isinstance(next_page_token, PageToken)
        params = self.window_params(next_page_token.window)
        params["limit"] = self.page_size
        params["offset"] = next_page_token.offset
        return params

    def fetch_page(self, context: Context | None, token: PageToken) -> Page:
        """One page, through the SDK's retries; a refused parameter reading is changed."""
        readings = self.readings
        for _ in range(MAX_READING_CHANGES):
            version = readings.version
            request = self.get_http_request(
                page=PageContext(stream_context=context, next_page_token=token)
            )
            prepared = self.build_prepared_request(
                method=request.method,
                url=request.url,
                params=request.encode_params(),
                headers=request.headers,
            )
            try:
                page = self._fetch(prepared, context, token)
            except VoluumAPIError as exc:
                if not exc.is_refused_parameter:
                    raise
                with readings.lock:
                    if readings.version == version and not self.adapt(
                        token.window, request.params, exc
                    ):
                        raise StreamFailure(f"{exc} (no other reading left to try)") from exc
                continue
            self.accepted(request.params)
            return page
        raise StreamFailure(f"{self.path}: Voluum kept refusing the parameters")

    def _fetch_once(self, prepared: Any, context: Context | None, token: PageToken) -> Page:
        response = send_request(self, prepared_request=prepared, context=context)
        head = self.read_page(response)
        with self._count_lock:
            self._request_counter.increment()
        return Page(token, response.content, head.totalRows, len(head.rows), head.totals)

    # --- readings Voluum refused -----------------------------------------------------

    def adapt(self, window: Window, params: dict[str, Any], exc: VoluumAPIError) -> bool:
        """Change one refused parameter reading (sort, columns); False when none is left."""
        return any(remedy(window, params, exc) for remedy in self.remedies(params, exc.detail))

    def remedies(self, params: dict[str, Any], text: str) -> list[Remedy]:
        """What to change, the one the error text points at first."""
        if self.named_columns(params, text) and "sort" not in text.lower():
            return [self.drop_columns, self.drop_sort]
        return [self.drop_sort, self.drop_columns]

    def protected_columns(self) -> frozenset[str]:
        """Columns never dropped on a hint (the key and the time fields)."""
        return frozenset(self.primary_keys or ())

    def named_columns(self, params: dict[str, Any], text: str) -> list[str]:
        """Requested columns an error text names (keys and the sort column excepted)."""
        protected = self.protected_columns() | {params.get("sort")}
        return [c for c in params.get("columns") or () if c not in protected and mentions(text, c)]

    def drop_sort(self, window: Window, params: dict[str, Any], exc: VoluumAPIError) -> bool:
        """Read without `sort` (pages are then checked for repeats and gaps)."""
        sort = params.get("sort")
        if not sort:
            return False
        self.readings.refuse_sort(sort)
        self.note_reading(exc, f"reading without sort={sort} from now on")
        return True

    def drop_columns(self, window: Window, params: dict[str, Any], exc: VoluumAPIError) -> bool:
        """Leave out the columns Voluum named, or the `columns` parameter altogether."""
        if not params.get("columns"):
            return False
        named = self.named_columns(params, exc.detail)
        self.readings.refuse_columns(self.path, named)
        if self.readings.sends_columns(self.path):
            self.note_reading(exc, f"leaving out columns {', '.join(named)} from now on")
        else:
            self.note_reading(exc, "leaving out the columns parameter from now on")
        return True

    def accepted(self, params: dict[str, Any]) -> None:
        """Voluum answered a request built with these parameters."""

    def note_reading(self, exc: VoluumAPIError, change: str) -> None:
        """One INFO line per change of reading (a change holds for the rest of the run)."""
        self.logger.info("%s: Voluum refused a parameter (%s); %s", self.name, exc, change)

    # --- records ---------------------------------------------------------------------

    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset({"timeZone", "currency"})
    """Fields the tap fills in itself; every other schema field is copied from Voluum."""
    non_null_keys: ClassVar[tuple[str, ...]] = ()
    distinct_rows: ClassVar[bool] = False
    """Rows are unique by primary key (report groups): repeats across pages are dropped."""

    @cached_property
    def api_fields(self) -> tuple[str, ...]:
        """The selected schema fields that come from Voluum's rows (which carry many more)."""
        return tuple(
            field
            for field in self.effective_schema["properties"]
            if field not in self.LOCAL_FIELDS and self.mask.get(("properties", field), True)
        )

    def requested_columns(self) -> list[str]:
        """`columns`: the fields wanted from Voluum."""
        return list(self.api_fields)

    def completer(self, window: Window) -> Callable[[dict], None]:
        """Return what fills a record's own fields from its Voluum values (bucket, times)."""
        raise NotImplementedError

    completer_fields: ClassVar[tuple[str, ...]] = ()
    """Row fields the completer reads, selected or not."""

    @cached_property
    def _row_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.api_fields, *self.completer_fields)))

    @cached_property
    def _page_decoder(self) -> RowDecoder:
        return page_decoder(self._row_fields, self.schema, self.completer_fields)

    @cached_property
    def _stamp(self) -> dict[str, Any]:
        """The tap's own fields of every record (time zone, currency), the selected ones."""
        stamp = {"timeZone": str(self.config["timezone"]), "currency": self.config.get("currency")}
        return {k: v for k, v in stamp.items() if self.mask[("properties", k)]}

    def written_fields(self) -> tuple[str, ...]:
        """Every field a record of this stream may carry."""
        key = (self.replication_key,) if self.replication_key else ()
        return (*self.api_fields, *self._stamp, *key)

    def record_chunks(self, window: Window, page: Page) -> Iterator[list[dict]]:
        """The page's records, in order, in chunks (`record_path.records_in_chunks`).

        The body is let go once decoded, and each chunk's rows once they are records.
        """
        rows = self._page_decoder.decode(page.take_body())
        if page.keep is not None:
            del rows[page.keep :]
        return records_in_chunks(
            rows,
            non_null=self.non_null_keys,
            complete=self.completer(window),
            unselected=tuple(f for f in self.completer_fields if f not in self.api_fields),
            stamp=self._stamp,
        )

    # --- the ordered, concurrent read ------------------------------------------------

    def read_records(self, context: Context | None) -> Iterable[dict]:
        """Yield every window's records in order, with a STATE after each window."""
        scheduler = self._scheduler(context)
        if scheduler is None:
            self.logger.info("%s: nothing to read, the range is empty", self.name)
            return
        self.reconciler = self.make_reconciler()
        self._record_writer = self.make_record_writer()
        self._batched = self.get_batch_config(self.config) is not None
        self._started = time.monotonic()
        self.log_plan(scheduler.windows)
        with self.reading(scheduler):
            try:
                yield from self._read(context, scheduler)
            finally:
                self.flush_records()
                self.fast_write = None
        if self.reconciler:
            self.reconciler.summary()

    _record_writer: RecordWriter | None = None
    _batched = False

    def flush_records(self) -> None:
        """Write out the RECORD lines still buffered."""
        if self._record_writer:
            self._record_writer.flush()

    def make_record_writer(self) -> RecordWriter | None:
        """The writer of this stream's RECORD lines, or None for the SDK's own path."""
        reason = sdk_path_reason(self, self.written_fields())
        if reason:
            self.logger.debug("%s: records go through the SDK's writer: %s", self.name, reason)
            return None
        return RecordWriter(self)

    def make_reconciler(self) -> Reconciler | None:
        """What checks each window against Voluum's totals (report streams only)."""
        return None

    def log_plan(self, windows: list[Window]) -> None:
        """One INFO line: the range, the windows, the requests at least, the time at least."""
        rate = float(self.config["max_requests_per_second"])
        self.logger.info(
            "%s: plan: %s → %s, %d window%s, at least %d request%s, at least %s at %g requests/s",
            self.name,
            f"{windows[0].start:%Y-%m-%d %H:%M}",
            f"{windows[-1].end:%Y-%m-%d %H:%M}",
            len(windows),
            "" if len(windows) == 1 else "s",
            len(windows),
            "" if len(windows) == 1 else "s",
            _duration(len(windows) / rate),
            rate,
        )

    def _read(self, context: Context | None, scheduler: PageScheduler) -> Iterator[dict]:
        for window, pages in scheduler:
            bookmark = dict(self.get_context_state(context))
            try:
                yield from self._read_window(window, pages)
            except BaseException:
                # The window is not whole: the bookmark goes back to where it began.
                state = self.get_context_state(context)
                state.clear()
                state.update(bookmark)
                raise
            if not self.connection_test and not self._batched:
                # With BATCH messages the SDK writes STATE after each batch file instead:
                # a window's records may still wait in a batch not yet written.
                write_state(self)

    def _read_window(self, window: Window, pages: Iterator[Page]) -> Iterator[dict]:
        started = time.monotonic()
        count = received = rows = 0
        total: int | None = None
        totals: dict | None = None
        seen: set[int] | None = set() if self.distinct_rows else None
        keys = tuple(self.primary_keys or ())
        reconciler = self.reconciler
        if reconciler:
            reconciler.start_window()
        writer = self._record_writer
        for page in pages:
            if not count:
                total, totals = page.total_rows, page.totals
            count += 1
            received += page.kept
            if writer:
                self.fast_write = writer.for_page()
            for chunk in self.record_chunks(window, page):
                records = chunk if seen is None else unseen(chunk, seen, keys)
                if reconciler:
                    add_up(reconciler, records)
                rows += len(records)
                yield from records
                if writer:
                    writer.flush()
        self._check_whole(window, total, received if seen is None else rows)
        if reconciler and count:
            reconciler.check(f"{window.start:%Y-%m-%d}", totals)
        self._log_progress(window, rows, count, time.monotonic() - started)

    def _log_progress(self, window: Window, rows: int, requests: int, seconds: float) -> None:
        """One INFO line per window: rows, requests, time, and the time left at this pace."""
        pace = (time.monotonic() - self._started) / window.index
        self.logger.info(
            "%s: window %d/%d %s done: %d rows, %d requests, %.2f s; about %s left",
            self.name,
            window.index,
            window.count,
            window,
            rows,
            requests,
            seconds,
            _duration(pace * (window.count - window.index)),
        )

    def _check_whole(self, window: Window, total: int | None, rows: int) -> None:
        """A window whose rows do not add up to Voluum's `totalRows` is never bookmarked."""
        if total is not None and rows != total:
            msg = (
                f"window {window} is not whole: {rows} rows read but Voluum's totalRows "
                f"says {total}; its state is not saved, run again"
            )
            raise StreamFailure(msg)


def _duration(seconds: float) -> str:
    """`42 s`, `3 min 20 s`, `2 h 05 min`."""
    whole = round(seconds)
    if whole < 60:
        return f"{max(seconds, 0):.0f} s" if seconds >= 1 else f"{max(seconds, 0):.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
