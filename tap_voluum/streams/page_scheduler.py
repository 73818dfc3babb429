"""The page scheduler of windowed streams: pages asked for concurrently, handed out in order.

- Order: pages come out window by window and, inside a window, page by page, so records
  and STATE follow window order and a bookmark never covers a window not fully written.
- Room: at most `workers + 2` requests run at once, and the pages waiting for their turn
  plus those being read (counted at the largest page seen) stay under
  `MAX_BUFFERED_BYTES`; one request may always run. Room goes to the earliest window
  first: its follow-up pages are asked for before later windows' first pages.
- First request alone: until a stream's first request is answered, nothing else is sent,
  so a reading Voluum refuses (`tap_voluum.readings`) is learned once, not per window.
- Paging: a window's first page gives `totalRows` and the page size Voluum really serves
  (the rows it brought, whatever `limit` it echoes, if any); the other offsets follow.
  A page short of what was expected is followed at once by a request for the rest. The
  stream checks that a window's rows add up to `totalRows`.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_voluum.streams.windows import Window


@dataclass(frozen=True)
class PageToken:
    """Which page of which window a request asks for."""

    window: Window
    offset: int


@dataclass
class Page:
    """One answer of a windowed endpoint: its body and what it says about paging."""

    token: PageToken
    body: bytes
    total_rows: int | None
    row_count: int
    totals: dict | None = None
    keep: int | None = None
    """Only the first `keep` rows count (a page asked for to fill a gap)."""
    size: int = field(init=False)
    """Bytes of the body as received (kept once the body is let go)."""

    def __post_init__(self) -> None:
        self.size = len(self.body)

    @property
    def kept(self) -> int:
        """The rows of this page that belong to the window."""
        return self.row_count if self.keep is None else min(self.keep, self.row_count)

    def take_body(self) -> bytes:
        """The body, let go by the page: a 10,000-row body is ~12 MB, freed once decoded."""
        body, self.body = self.body, b""
        return body


@dataclass
class _WindowPages:
    window: Window
    queue: deque[Future[Page]]  # requested pages, in order, not yet handed out
    offsets: deque[int] | None = None  # pages not yet requested; known once page 1 is in
    step: int = 0
    total: int | None = None

    def plan_after(self, first: Page, page_size: int) -> None:
        """The offsets of the other pages, from the first page's `totalRows` and row count."""
        got, total = first.row_count, first.total_rows
        self.total = total
        if total is None:  # no `totalRows`: page on until an empty page
            self.step = got
            self.offsets = deque([got] if got else [])
            return
        self.step = got if 0 < got < min(page_size, total) else page_size
        self.offsets = deque(range(got, total, self.step) if got else ())

    def expected(self, offset: int) -> int | None:
        """Rows a page at `offset` should bring, when `totalRows` is known."""
        return None if self.total is None else min(self.step, self.total - offset)


class PageScheduler:
    """Requests the pages of a stream's windows through a pool, handing them out in order."""

    MAX_BUFFERED_BYTES = 16 * 1024 * 1024
    MAX_WINDOWS_AHEAD = 64

    def __init__(
        self,
        fetch: Callable[[PageToken], Page],
        windows: list[Window],
        pool: ThreadPoolExecutor,
        *,
        workers: int,
        page_size: int,
    ) -> None:
        self.fetch = fetch
        self.pending = iter(windows)
        self.pool = pool
        self.max_running = workers + 2
        self.page_size = page_size
        self.page_bytes = 0  # the largest page seen: answers being read take memory too
        self.answered = False  # the stream's first request came back
        self.plan: deque[_WindowPages] = deque()

    def __iter__(self) -> Iterator[tuple[Window, Iterator[Page]]]:
        self.top_up()
        while self.plan:
            entry = self.plan[0]
            yield entry.window, self._pages_of(entry)
            self.plan.popleft()
            self.top_up()

    def _pages_of(self, entry: _WindowPages) -> Iterator[Page]:
        while True:
            if not entry.queue:
                if not entry.offsets:
                    return
                entry.queue.append(self._submit(entry.window, entry.offsets.popleft()))
            page = self._take(entry.queue[0])
            entry.queue.popleft()
            self._learn(entry, page)
            self.top_up()
            yield page
            yield from self._rest_of(entry, page)

    def _learn(self, entry: _WindowPages, page: Page) -> None:
        self.page_bytes = max(self.page_bytes, page.size)
        if entry.offsets is None:
            entry.plan_after(page, self.page_size)
        elif entry.total is None and page.row_count and page.token.offset >= entry.step:
            entry.offsets.append(page.token.offset + page.row_count)

    def _rest_of(self, entry: _WindowPages, page: Page) -> Iterator[Page]:
        """Ask at once for rows a page should have brought and did not (a silent cap)."""
        expected = entry.expected(page.token.offset)
        got = page.row_count
        while expected is not None and 0 < got < expected:
            gap = self.fetch(PageToken(entry.window, page.token.offset + got))
            if not gap.row_count:
                return
            gap = replace(gap, keep=min(expected - got, gap.row_count))
            got += gap.kept
            yield gap

    def _take(self, future: Future[Page]) -> Page:
        """Wait for one page, asking for more whenever another one comes in."""
        while not future.done():
            running = [f for e in self.plan for f in e.queue if not f.done()]
            wait(running, return_when=FIRST_COMPLETED)
            self.top_up()
        return future.result()

    def _submit(self, window: Window, offset: int) -> Future[Page]:
        return self.pool.submit(self.fetch, PageToken(window, offset))

    def _has_room(self) -> bool:
        running = buffered = 0
        for entry in self.plan:
            for future in entry.queue:
                if not future.done():
                    running += 1
                elif future.exception() is None:
                    self.answered = True
                    buffered += future.result().size
        if running == 0:
            return self.answered or not self.plan
        expected = buffered + (running + 1) * self.page_bytes
        return self.answered and running < self.max_running and expected < self.MAX_BUFFERED_BYTES

    def top_up(self) -> None:
        """Use the room: follow-up pages of the earliest windows, then new windows."""
        for entry in self.plan:
            first = entry.queue[0] if entry.queue else None
            if entry.offsets is None and first and first.done() and first.exception() is None:
                self._learn(entry, first.result())
        while self._has_room():
            unasked = next((e for e in self.plan if e.offsets), None)
            if unasked is not None and unasked.offsets:
                unasked.queue.append(self._submit(unasked.window, unasked.offsets.popleft()))
            elif len(self.plan) < self.MAX_WINDOWS_AHEAD and (window := next(self.pending, None)):
                self.plan.append(_WindowPages(window, deque([self._submit(window, 0)])))
            else:
                return
