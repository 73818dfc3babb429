"""Date windows in the report time zone, fetched concurrently and emitted in order.

A window is `report_window_days` local days, `[start, end)` on whole hours of wall-clock
time in `timezone` (Voluum reads `from`/`to` that way, so a local day may last 23 or 25
hours). Pages of every window are requested through a bounded thread pool, but records
and STATE come out strictly in window order, so a bookmark never covers a window that was
not fully written.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

import msgspec
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams.rest import PageContext

from tap_voluum.client import VoluumStream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context

PARAM_FORMAT = "%Y-%m-%dT%H:00:00"


def page_decoder(fields: tuple[str, ...]) -> msgspec.json.Decoder:
    """A decoder of a report page that builds only `fields` of each row.

    Voluum's rows carry dozens of fields beyond those asked for, and each page its totals
    and column metadata: skipping them in msgspec keeps a 10,000-row page small and fast.
    A field Voluum leaves out comes back as `msgspec.UNSET`.
    """
    row = msgspec.defstruct(
        "Row",
        [(f"f{i}", Any, msgspec.UNSET) for i in range(len(fields))],
        rename={f"f{i}": name for i, name in enumerate(fields)},
        array_like=False,
    )
    rows_type: Any = list[row]  # type: ignore[valid-type]
    page = msgspec.defstruct("Page", [("rows", rows_type, msgspec.field(default_factory=list))])
    return msgspec.json.Decoder(page)


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


@dataclass(frozen=True)
class PageToken:
    """Which page of which window a request asks for."""

    window: Window
    offset: int


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


class WindowedStream(VoluumStream):
    """A report-like endpoint read in date windows, incremental on a date-time key."""

    is_sorted = True
    check_sorted = False  # the lookback re-reads days before the bookmark on purpose
    decode_rows_later = True
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
        """The windows this sync reads."""
        return make_windows(self.range_start_day(context), self.range_end(), self.window_days)

    # --- requests --------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Rows per request (`page_size`)."""
        return int(self.config["page_size"])

    def window_params(self, window: Window) -> dict[str, Any]:
        """Query parameters for one window (without paging): range, zone, account options."""
        params: dict[str, Any] = {**window.params, "tz": str(self.config["timezone"])}
        params["include"] = "ALL"
        params["direction"] = "ASC"
        params["columns"] = self.requested_columns()
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

    def fetch_page(self, context: Context | None, token: PageToken) -> requests.Response:
        """Send one page request through the SDK's retrying request path."""
        request = self.get_http_request(
            page=PageContext(stream_context=context, next_page_token=token)
        )
        prepared = self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )
        return self._send(prepared, context)

    # --- records ---------------------------------------------------------------------

    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset({"timeZone", "currency"})
    """Fields the tap fills in itself; every other schema field is copied from Voluum."""
    non_null_keys: ClassVar[tuple[str, ...]] = ()

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
    def _page_decoder(self) -> msgspec.json.Decoder:
        return page_decoder(self._row_fields)

    def rows_of(self, window: Window, response: requests.Response) -> Iterable[dict]:
        """Decode the wanted fields of each row, complete them, stamp zone and currency."""
        rows = self._page_decoder.decode(response.content).rows
        if not rows:
            return
        names = self._row_fields
        unselected = tuple(f for f in self.completer_fields if f not in self.api_fields)
        keys = self.non_null_keys
        complete = self.completer(window)
        stamp = {"timeZone": str(self.config["timezone"]), "currency": self.config.get("currency")}
        unset = msgspec.UNSET
        astuple = msgspec.structs.astuple
        for row in rows:
            record = {k: v for k, v in zip(names, astuple(row), strict=True) if v is not unset}
            for key in keys:
                if record.get(key) is None:
                    record[key] = ""
            complete(record)
            for field in unselected:
                record.pop(field, None)
            record.update(stamp)
            yield record

    # --- the ordered, concurrent read ------------------------------------------------

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Yield every window's records in order, with a STATE after each window."""
        windows = self.windows(context)
        self._send = self.request_decorator(self._request)  # retries, as request_records does
        if not windows:
            self.logger.info("%s: nothing to read, the range is empty", self.name)
            return
        workers = max(int(self.config["max_concurrency"]), 1)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.name) as pool:
            pages = _PagePlan(self, context, windows, pool, workers)
            try:
                yield from self._read(pages)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def _read(self, pages: _PagePlan) -> Iterator[dict]:
        for window, responses in pages:
            started = time.monotonic()
            count, rows = 0, 0
            for response in responses:
                count += 1
                for record in self.rows_of(window, response):
                    rows += 1
                    yield record
            self._write_state_message()
            self.logger.info(
                "%s: window %d/%d %s done: %d rows, %d requests, %.2f s",
                self.name,
                window.index,
                window.count,
                window,
                rows,
                count,
                time.monotonic() - started,
            )


@dataclass
class _WindowPages:
    window: Window
    queue: deque[Future[requests.Response]]  # requested pages, in order, not yet consumed
    offsets: deque[int] | None = None  # pages not yet requested; known once page 1 is in


class _PagePlan:
    """Requests the pages of the windows through a pool, handing them out in order.

    The pool is kept busy (`workers + 2` requests queued or running) while the pages that
    arrived and wait for their turn, plus those being read (at the largest page size seen),
    stay under `MAX_BUFFERED_BYTES`; one request may always run. Room goes to the
    earliest window first: its follow-up pages are asked for as soon as its first page
    says how many there are, before the first pages of later windows.
    """

    MAX_BUFFERED_BYTES = 16 * 1024 * 1024
    MAX_WINDOWS_AHEAD = 64

    def __init__(
        self,
        stream: WindowedStream,
        context: Context | None,
        windows: list[Window],
        pool: ThreadPoolExecutor,
        workers: int,
    ) -> None:
        self.stream = stream
        self.context = context
        self.pending = iter(windows)
        self.pool = pool
        self.max_running = workers + 2
        self.page_bytes = 0  # the largest page seen: answers being read take memory too
        self.plan: deque[_WindowPages] = deque()

    def __iter__(self) -> Iterator[tuple[Window, Iterator[requests.Response]]]:
        self.top_up()
        while self.plan:
            entry = self.plan[0]
            yield entry.window, self._pages_of(entry)
            self.plan.popleft()
            self.top_up()

    def _pages_of(self, entry: _WindowPages) -> Iterator[requests.Response]:
        while True:
            if not entry.queue:
                if not entry.offsets:
                    return
                entry.queue.append(self._submit(entry.window, entry.offsets.popleft()))
            response = self._take(entry.queue[0])
            entry.queue.popleft()
            self.page_bytes = max(self.page_bytes, len(response.content))
            if entry.offsets is None:
                entry.offsets = page_offsets(response)
            self.top_up()
            yield response

    def _take(self, future: Future[requests.Response]) -> requests.Response:
        """Wait for one page, asking for more pages whenever another one comes in."""
        while not future.done():
            running = [f for e in self.plan for f in e.queue if not f.done()]
            wait(running, return_when=FIRST_COMPLETED)
            self.top_up()
        return future.result()

    def _submit(self, window: Window, offset: int) -> Future[requests.Response]:
        token = PageToken(window, offset)
        return self.pool.submit(self.stream.fetch_page, self.context, token)

    def _has_room(self) -> bool:
        running = buffered = 0
        for entry in self.plan:
            for future in entry.queue:
                if not future.done():
                    running += 1
                elif future.exception() is None:
                    buffered += len(future.result().content)
        if running == 0:
            return True
        expected = buffered + (running + 1) * self.page_bytes
        return running < self.max_running and expected < self.MAX_BUFFERED_BYTES

    def top_up(self) -> None:
        """Use the room: follow-up pages of the earliest windows, then new windows."""
        for entry in self.plan:
            first = entry.queue[0] if entry.queue else None
            if entry.offsets is None and first and first.done() and first.exception() is None:
                entry.offsets = page_offsets(first.result())
                self.page_bytes = max(self.page_bytes, len(first.result().content))
        while self._has_room():
            unasked = next((e for e in self.plan if e.offsets), None)
            if unasked is not None and unasked.offsets:
                unasked.queue.append(self._submit(unasked.window, unasked.offsets.popleft()))
            elif len(self.plan) < self.MAX_WINDOWS_AHEAD and (window := next(self.pending, None)):
                self.plan.append(_WindowPages(window, deque([self._submit(window, 0)])))
            else:
                return


def page_offsets(first: requests.Response) -> deque[int]:
    """Offsets of the pages after the first, from its `totalRows` and (echoed) `limit`."""
    head = getattr(first, "voluum_head", None)
    total = (head.totalRows if head else None) or 0
    limit = (head.limit if head else None) or 0
    return deque(range(limit, total, limit) if limit > 0 else ())
