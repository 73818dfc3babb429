"""Windowed streams: a report-like endpoint read window by window, records in window order.

The read, top to bottom (`read_records`): the stream's range (`window_plan`: from
`start_date` or the bookmark's day minus `lookback_days`, to `end_date` or now) is cut
into windows as wide as the data allows (`windows.WindowPlan`); their pages are asked for
concurrently and handed out in order (`pages.PageScheduler`); each page's rows become
records (`record_path`), are checked against Voluum's `totalRows` and `totals`
(`reconcile`), and after each whole window the bookmark moves to that window's last hour
and a STATE goes out. A bookmark never covers a window not fully written: records move
no bookmark on their own (`sdk_compat.WindowBookmarks`), a window does.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_voluum.accounts import account_of
from tap_voluum.errors import StreamFailure, VoluumAPIError
from tap_voluum.readings import Readings, mentions
from tap_voluum.sdk_compat import (
    RecordHook,
    RecordWriter,
    sdk_path_reason,
    send_request,
    write_state,
)
from tap_voluum.stamps import SettingsStamped
from tap_voluum.streams.pages import Page, PageScheduler, PageToken, pages_of_alone
from tap_voluum.streams.reconcile import Reconciler
from tap_voluum.streams.record_path import (
    add_up,
    page_decoder,
    records_in_chunks,
    unseen,
)
from tap_voluum.streams.sync_ahead import SyncAhead
from tap_voluum.streams.windows import (
    Window,
    WindowPlan,
    aware,
    ceil_hour,
    duration,
    local_now,
    parse_setting_datetime,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context

    from tap_voluum.shapes import RowDecoder

MAX_READING_CHANGES = 12
"""Changes of readings one request may go through before its stream gives up."""


if TYPE_CHECKING:
    from typing import TypeAlias

    Remedy: TypeAlias = Callable[[Context | None, Window, dict[str, Any], VoluumAPIError], bool]
    """A change of reading after Voluum refused a parameter; False when it has none."""


class WindowedStream(RecordHook, SettingsStamped, SyncAhead):
    """A report-like endpoint read in date windows, incremental on a date-time key."""

    is_sorted = True
    check_sorted = False  # the lookback re-reads days before the bookmark on purpose
    decode_rows_later = True
    fitted_when_decoded = True
    # Rows are copied field by field from Voluum's JSON, whose types already match the
    # schema: the SDK's per-record type conformance would only repeat that work.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    # --- the range -------------------------------------------------------------------

    def tz(self, context: Context | None) -> ZoneInfo:
        """The report time zone (`timezone`) of the context's account."""
        return ZoneInfo(str(self.settings(context)["timezone"]))

    @property
    def window_days(self) -> int | None:
        """Local days per window: the user's `report_window_days`, or None (automatic)."""
        days = self.config.get("report_window_days")
        return int(days) if days else None

    def range_end(self, context: Context | None) -> datetime:
        """`min(end_date, now)` as local wall-clock time, rounded up to a whole hour."""
        end = ceil_hour(local_now(self.tz(context)))
        if self.config.get("end_date"):
            end = min(
                end, ceil_hour(parse_setting_datetime(self.config["end_date"]).replace(tzinfo=None))
            )
        return end

    def range_start_day(self, context: Context | None) -> date:
        """`start_date`'s day, or the bookmark's day minus `lookback_days`.

        The bookmark is the last hour of the last window written whole (windows move it,
        records do not), so everything before it was read; `lookback_days` re-reads late
        conversions and cost corrections.
        """
        first = parse_setting_datetime(str(self.settings(context)["start_date"])).date()
        bookmark = self.resume_value(context)  # read as the SDK starts; settings changed: None
        if not bookmark:
            return first
        day = parse_setting_datetime(str(bookmark)).astimezone(self.tz(context)).date()
        return max(first, day - timedelta(days=int(self.config["lookback_days"])))

    def window_plan(self, context: Context | None) -> WindowPlan:
        """The windows this sync reads (the last day alone for `--test`)."""
        end = self.range_end(context)
        first = self.range_start_day(context)
        if self.connection_test:
            first = max(first, (end - timedelta(hours=1)).date())
        plan = WindowPlan(first, end, days=self.window_days, widest=self.readings.widest_span)
        plan.label = self.label(context)
        return plan

    def bookmark_after(self, context: Context | None, window: Window) -> str:
        """The bookmark once `window` is written: the start of its last bucket."""
        return aware(window.last_hour, self.tz(context)).isoformat()

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

    def window_params(self, context: Context | None, window: Window) -> dict[str, Any]:
        """Query parameters for one window (without paging): range, zone, account options."""
        settings = self.settings(context)
        params: dict[str, Any] = {**window.params, "tz": str(settings["timezone"])}
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
                page = self.send_page(prepared, context, token)
            except VoluumAPIError as exc:
                if not exc.is_refused_parameter:
                    raise
                with readings.lock:
                    if readings.version == version and not self.adapt(
                        context, token.window, request.params, exc
                    ):
                        raise StreamFailure(f"{exc} (no other reading left to try)") from exc
                continue
            self.accepted(request.params)
            return page
        raise StreamFailure(f"{self.path}: Voluum kept refusing the parameters")

    def send_page(
        self, prepared: requests.PreparedRequest, context: Context | None, token: PageToken
    ) -> Page:
        """Send one page request through the SDK's retries (`request_decorator`), counted."""
        return self.request_decorator(self._send_page_once)(prepared, context, token)

    def _send_page_once(
        self, prepared: requests.PreparedRequest, context: Context | None, token: PageToken
    ) -> Page:
        response = send_request(self, prepared_request=prepared, context=context)
        head = self.read_page(response)
        with self._count_lock:
            self._request_counter.increment()
        return Page(token, response.content, head.totalRows, len(head.rows), head.totals)

    # --- readings Voluum refused -----------------------------------------------------

    def adapt(
        self, context: Context | None, window: Window, params: dict[str, Any], exc: VoluumAPIError
    ) -> bool:
        """Change one refused parameter reading (sort, columns); False when none is left."""
        remedies = self.remedies(params, exc.detail)
        return any(remedy(context, window, params, exc) for remedy in remedies)

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

    def drop_sort(
        self, context: Context | None, window: Window, params: dict[str, Any], exc: VoluumAPIError
    ) -> bool:
        """Read without `sort` (pages are then checked for repeats and gaps)."""
        sort = params.get("sort")
        if not sort:
            return False
        self.readings.refuse_sort(sort)
        self.note_reading(exc, f"reading without sort={sort} from now on")
        return True

    def drop_columns(
        self, context: Context | None, window: Window, params: dict[str, Any], exc: VoluumAPIError
    ) -> bool:
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

    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset({"account", "timeZone", "currency"})
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

    def completer(self, context: Context | None, window: Window) -> Callable[[dict], None]:
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

    def stamp(self, context: Context | None) -> dict[str, Any]:
        """The tap's own fields of every record of an account, the selected ones."""
        settings = self.settings(context)
        stamp = {
            "account": self.client.account(account_of(context)).name,
            "timeZone": str(settings["timezone"]),
            "currency": settings.get("currency"),
        }
        return {k: v for k, v in stamp.items() if self.mask.get(("properties", k), False)}

    def written_fields(self) -> tuple[str, ...]:
        """Every field a record of this stream may carry."""
        key = (self.replication_key,) if self.replication_key else ()
        return (*self.api_fields, *self.stamp(None), *key)

    def record_chunks(
        self, context: Context | None, window: Window, page: Page
    ) -> Iterator[list[dict]]:
        """The page's records, in order, in chunks (`record_path.records_in_chunks`).

        The body is let go once decoded, and each chunk's rows once they are records.
        """
        rows = self._page_decoder.decode(page.take_body())
        if page.keep is not None:
            del rows[page.keep :]
        return records_in_chunks(
            rows,
            non_null=self.non_null_keys,
            complete=self.completer(context, window),
            unselected=tuple(f for f in self.completer_fields if f not in self.api_fields),
            stamp=self.stamp(context),
        )

    # --- the ordered, concurrent read ------------------------------------------------

    def read_records(self, context: Context | None) -> Iterable[dict]:
        """Yield every window's records in order; after each window, its bookmark and STATE."""
        scheduler = self._scheduler(context)
        if scheduler is None:
            self.logger.info("%s: nothing to read, the range is empty", self.name)
            return
        self.reconciler = self.make_reconciler()
        self.record_writer = self.make_record_writer()
        self._batched = self.get_batch_config(self.config) is not None
        self._started = time.monotonic()
        self._windows_done = 0
        with self.reading(scheduler):
            try:
                yield from self._read(context, scheduler)
            finally:
                if self.record_writer:
                    self.record_writer.flush()  # the records of a window cut short too
                self.record_writer = None
        if self.reconciler:
            self.reconciler.summary()

    _batched = False
    _windows_done = 0

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

    def _read(self, context: Context | None, scheduler: PageScheduler) -> Iterator[dict]:
        for window, pages in scheduler:
            yield from self._read_window(context, window, pages)
            self._windows_done += 1
            self._log_progress(window, scheduler)
            if not self.connection_test:
                self.move_bookmark(context, self.bookmark_after(context, window))
                if not self._batched:
                    # With BATCH messages the SDK writes STATE after each batch file instead:
                    # a window's records may still wait in a batch not yet written.
                    write_state(self)

    def _read_window(
        self, context: Context | None, window: Window, pages: Iterator[Page]
    ) -> Iterator[dict]:
        started = time.monotonic()
        count = received = rows = 0
        total: int | None = None
        totals: dict | None = None
        seen: set[int] | None = set() if self.distinct_rows else None
        keys = tuple(self.primary_keys or ())
        reconciler = self.reconciler
        if reconciler:
            reconciler.start_window()
        writer = self.record_writer
        for page in pages:
            if not count:
                total, totals = page.total_rows, page.totals
            count += 1
            received += page.kept
            if writer:
                writer.new_page()
            for chunk in self.record_chunks(context, window, page):
                records = chunk if seen is None else unseen(chunk, seen, keys)
                if reconciler:
                    add_up(reconciler, records)
                rows += len(records)
                yield from records
                if writer:
                    writer.flush()
        self._check_whole(window, total, received if seen is None else rows)
        if reconciler and count:
            self._reconcile(context, reconciler, window, totals)
        self._window_figures = (rows, count, time.monotonic() - started)

    _window_figures: tuple[int, int, float] = (0, 0, 0.0)

    def _reconcile(
        self, context: Context | None, reconciler: Reconciler, window: Window, totals: dict | None
    ) -> None:
        """Check a window against Voluum's totals; a mismatch over days is found day by day."""
        if window.days == 1 or reconciler.matches(totals):
            reconciler.check(f"{window.first_day:%Y-%m-%d}", totals)
            return
        for day in window.day_windows():
            reconciler.start_window()
            answer = pages_of_alone(partial(self.fetch_page, context), day)
            for page in answer:
                for chunk in self.record_chunks(context, day, page):
                    add_up(reconciler, chunk)
            reconciler.check(f"{day.first_day:%Y-%m-%d}", answer[0].totals if answer else None)

    # --- window sizes ----------------------------------------------------------------

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
        parts, why, warning = plan.resize(window, total, error, self.readings.refuse_span)
        if why:
            self.logger.log(logging.WARNING if warning else logging.INFO, "%s: %s", plan.label, why)
        return parts

    def _log_progress(self, window: Window, scheduler: PageScheduler) -> None:
        """One INFO line per window: rows, requests, time, and the time left at this pace."""
        rows, requests, seconds = self._window_figures
        done = self._windows_done
        left = scheduler.windows_left() - 1
        pace = (time.monotonic() - self._started) / done
        self.logger.info(
            "%s: window %d/%d %s done: %d rows, %d requests, %.2f s; about %s left",
            scheduler.windows.label or self.name,
            done,
            done + max(left, 0),
            window,
            rows,
            requests,
            seconds,
            duration(pace * max(left, 0)),
        )

    def _check_whole(self, window: Window, total: int | None, rows: int) -> None:
        """A window whose rows do not add up to Voluum's `totalRows` is never bookmarked."""
        if total is not None and rows != total:
            msg = (
                f"window {window} is not whole: {rows} rows read but Voluum's totalRows "
                f"says {total}; its state is not saved, run again"
            )
            raise StreamFailure(msg)
