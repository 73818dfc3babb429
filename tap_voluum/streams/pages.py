"""The pages of windowed streams: asked for concurrently, handed out in order.

- Order: pages come out window by window and, inside a window, page by page, so records
  and STATE follow window order and a bookmark never covers a window not fully written.
- One feed per tap (`PageFeed`): one pool of `max_concurrency` threads for every windowed
  stream, and one room: at most `max_concurrency + 2` requests run at once, and the pages
  waiting for their turn plus those being read (counted at the largest page seen in their
  stream) stay under `MAX_BUFFERED_BYTES`; one request may always run.
- Room goes to the stream being read first, earliest windows first (follow-up pages
  before later windows' first pages), then to the streams synced next, in order: as the
  last stream planned asks for its last windows, the next stream's pages are planned
  (`on_last_windows`), so its first request goes out while the last pages before it come
  in, and its next ones as soon as room is left. A stream's records still come out only
  in its own sync.
- First request alone: until a stream's first request is answered, that stream sends
  nothing else, and no stream sends its first request while another stream's first is
  unanswered, so a reading Voluum refuses (`tap_voluum.readings`) is learned once, not per
  window. Once one account's first request of a stream is answered, the other accounts'
  units of that stream go without waiting (`kin`): accounts are read side by side.
- Paging: a window's first page gives `totalRows` and the page size Voluum really serves
  (the rows it brought, whatever `limit` it echoes, if any); the other offsets follow.
  A page short of what was expected is followed at once by a request for the rest. The
  stream checks that a window's rows add up to `totalRows`.
- Windows are cut from the stream's `WindowPlan` as they are asked for, so each is sized
  by what the windows before it held. A window whose first page says it is too big, or
  whose first page Voluum refused for its span or kept failing, is replaced by its parts
  (`resize`) before any of its rows is handed out.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_voluum.streams.windows import Window, WindowPlan

    Resize = Callable[[Window, "Page | None", "BaseException | None"], "list[Window] | None"]
    """The parts that replace a window, given its first page or the error it met; None: keep."""


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
    queue: deque[Future[Page]] = field(default_factory=deque)  # asked for, not handed out
    offsets: deque[int] | None = None  # pages not yet requested; known once page 1 is in
    step: int = 0
    total: int | None = None

    @property
    def first_asked(self) -> bool:
        """Whether the window's first page was asked for."""
        return bool(self.queue) or self.offsets is not None

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


def pages_of_alone(fetch: Callable[[PageToken], Page], window: Window) -> list[Page]:
    """Every page of one window, one request after another (a check, not a sync)."""
    pages = [fetch(PageToken(window, 0))]
    total = pages[0].total_rows or 0
    got = pages[0].row_count
    while got < total and pages[-1].row_count:
        pages.append(fetch(PageToken(window, got)))
        got += pages[-1].row_count
    return pages


class PageScheduler:
    """One stream's windows: their pages asked for through the tap's feed, handed out in order."""

    MAX_WINDOWS_AHEAD = 64

    def __init__(
        self,
        fetch: Callable[[PageToken], Page],
        plan: WindowPlan,
        feed: PageFeed,
        *,
        page_size: int,
        resize: Resize,
        on_last_windows: Callable[[], None] | None = None,
        kin: str = "",
    ) -> None:
        self.fetch = fetch
        self.kin = kin
        """The stream (of any account) whose answered first request taught its readings."""
        self.windows = plan  # windows not yet cut
        self.feed = feed
        self.page_size = page_size
        self.resize = resize
        self.page_bytes = 0  # the largest page seen: answers being read take memory too
        self.started = False  # the stream's first request went out
        self.answered = False  # ... and came back
        self.plan: deque[_WindowPages] = deque()
        self.on_last_windows = on_last_windows
        feed.schedulers.append(self)

    def __iter__(self) -> Iterator[tuple[Window, Iterator[Page]]]:
        self.feed.top_up()
        while self.plan or not self.all_cut:
            if not self.plan or not self.plan[0].first_asked:
                if not self.feed.wait():
                    self.ask_first() or self.ask_next()  # one request may always run
                continue
            entry = self.plan[0]
            if entry.offsets is None and not self._settle(entry):
                continue  # replaced by its parts
            yield entry.window, self._pages_of(entry)
            self.plan.popleft()
            self.feed.top_up()

    @property
    def all_cut(self) -> bool:
        """Whether every window of the range is planned."""
        return self.windows.cursor >= self.windows.end

    def windows_left(self) -> int:
        """Windows planned and not handed out, plus those not cut yet."""
        return len(self.plan) + self.windows.windows_left()

    def close(self) -> None:
        """Stop: requests not started are dropped, and the room goes to the other streams.

        Requests running are waited for, so that their log lines come before the stream's.
        """
        running = [future for future in self.futures() if not future.cancel()]
        wait(running)
        self.plan.clear()
        self.windows.cursor = self.windows.end
        if self in self.feed.schedulers:
            self.feed.schedulers.remove(self)
        self.feed.top_up()

    def futures(self) -> Iterator[Future[Page]]:
        """The requests asked for and not yet handed out."""
        return itertools.chain.from_iterable(entry.queue for entry in self.plan)

    def _settle(self, entry: _WindowPages) -> bool:
        """Wait for the head window's first page; False when parts took its place."""
        future = entry.queue[0]
        while not future.done():
            self.feed.wait(future)
        if not self.plan or self.plan[0] is not entry:
            return False  # split while waiting (`learn_firsts`)
        if entry.offsets is not None:
            return True  # planned while waiting
        error = future.exception()
        if error is not None:
            self.answered = True  # with an error: what to ask next is known all the same
            parts = self.resize(entry.window, None, error)
            if parts is None:
                raise error
            self._replace(entry, parts)
            return False
        return self._learn(entry, future.result())

    def _replace(self, entry: _WindowPages, parts: list[Window]) -> None:
        """Put a window's parts in its place; its answers so far are dropped."""
        for future in entry.queue:
            future.cancel()
        index = next(i for i, e in enumerate(self.plan) if e is entry)
        del self.plan[index]
        for offset, window in enumerate(parts):
            self.plan.insert(index + offset, _WindowPages(window))
        self.feed.top_up()

    def _pages_of(self, entry: _WindowPages) -> Iterator[Page]:
        while True:
            if not entry.queue:
                if not entry.offsets:
                    return
                entry.queue.append(self._submit(entry.window, entry.offsets.popleft()))
            page = self._take(entry.queue[0])
            entry.queue.popleft()
            self._learn(entry, page)
            self.feed.top_up()
            yield page
            yield from self._rest_of(entry, page)

    def _learn(self, entry: _WindowPages, page: Page) -> bool:
        """Take in a page; a first page plans the rest, or splits its window (False)."""
        self.answered = True
        self.feed.learned.add(self.kin)
        self.page_bytes = max(self.page_bytes, page.size)
        if entry.offsets is None:
            parts = self.resize(entry.window, page, None)
            if parts is not None:
                self._replace(entry, parts)
                return False
            entry.plan_after(page, self.page_size)
        elif entry.total is None and page.row_count and page.token.offset >= entry.step:
            entry.offsets.append(page.token.offset + page.row_count)
        return True

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
            self.feed.wait(future)
        return future.result()

    def _submit(self, window: Window, offset: int) -> Future[Page]:
        self.started = True
        return self.feed.pool.submit(self.fetch, PageToken(window, offset))

    def learn_firsts(self) -> None:
        """Plan the other pages of windows whose first page came in (or split them)."""
        for entry in list(self.plan):
            first = entry.queue[0] if entry.queue else None
            if first and first.done() and not first.cancelled() and first.exception() is None:
                self.answered = True
                if entry.offsets is None:
                    self._learn(entry, first.result())

    def near_end(self) -> bool:
        """Whether what is left to ask for fits in twice the requests that may run at once.

        Twice: a request asked for now may wait for up to that many before its turn at the
        rate limiter, then for its answer, and should come back before these are all sent.
        """
        unasked = sum(not e.first_asked for e in self.plan)
        left = unasked + self.windows.windows_left() + sum(len(e.offsets or ()) for e in self.plan)
        return left <= 2 * self.feed.max_running

    def _new_window(self) -> bool:
        """Ask for the first page of the next window (planned, or cut from the range)."""
        entry = next((e for e in self.plan if not e.first_asked), None)
        if entry is None:
            if len(self.plan) >= self.MAX_WINDOWS_AHEAD:
                return False
            window = self.windows.next()
            if window is None:
                return False
            entry = _WindowPages(window)
            self.plan.append(entry)
        entry.queue.append(self._submit(entry.window, 0))
        return True

    def ask_first(self) -> bool:
        """Send the stream's first request (alone: nothing else until it is answered)."""
        if self.started:
            return False
        return self._new_window()

    @property
    def knows_readings(self) -> bool:
        """Whether a first request of this stream (this account's or another's) was answered."""
        return self.answered or self.kin in self.feed.learned

    def ask_next(self) -> bool:
        """Ask for one more page: follow-up pages of the earliest windows, then a new window."""
        if not self.knows_readings:
            return False
        unasked = next((e for e in self.plan if e.offsets), None)
        if unasked is not None and unasked.offsets:
            unasked.queue.append(self._submit(unasked.window, unasked.offsets.popleft()))
            return True
        return self._new_window()


class PageFeed:
    """The page requests of a tap's windowed streams: one pool, one room, in sync order."""

    MAX_BUFFERED_BYTES = 16 * 1024 * 1024

    def __init__(self, workers: int) -> None:
        self.workers = max(workers, 1)
        self.max_running = self.workers + 2
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="voluum")
        self.schedulers: list[PageScheduler] = []  # in sync order: the first is being read
        self.learned: set[str] = set()  # streams whose first request was answered
        self.closed = False

    def close(self) -> None:
        """Drop every request not started; the pool's threads end."""
        self.closed = True
        self.schedulers.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def wait(self, awaited: Future[Page] | None = None) -> bool:
        """Wait until a running request comes back, then use the room (False: none ran)."""
        running = [f for s in self.schedulers for f in s.futures() if not f.done()]
        if awaited is not None and not awaited.done():
            running.append(awaited)
        if running:
            wait(running, return_when=FIRST_COMPLETED)
        self.top_up()
        return bool(running)

    def top_up(self) -> None:
        """Use the room: the stream being read first, then the one synced after it."""
        for scheduler in self.schedulers:
            scheduler.learn_firsts()
        self._look_ahead()
        while any(self._has_room(s) and self._ask(s) for s in self._in_turn()):
            pass

    def _look_ahead(self) -> None:
        """Once the last stream planned asks for its last windows, plan the next stream's.

        The last one planned: the stream being read, or one planned ahead of its sync that
        got room to ask for all its windows already.
        """
        last = self.schedulers[-1] if self.schedulers else None
        if last and last.on_last_windows and last.knows_readings and last.near_end():
            prime, last.on_last_windows = last.on_last_windows, None
            prime()

    def _in_turn(self) -> list[PageScheduler]:
        """Who asks first: streams in sync order, but a next stream's first request first.

        That one goes once the stream before it is near its end, so that it comes back
        before that stream's last pages do.
        """
        first_asks = [
            later
            for earlier, later in itertools.pairwise(self.schedulers)
            if not later.started and earlier.knows_readings and earlier.near_end()
        ]
        return [*first_asks[:1], *self.schedulers]

    def _ask(self, scheduler: PageScheduler) -> bool:
        if not scheduler.started:
            earlier = self.schedulers[: self.schedulers.index(scheduler)]
            first_alone = all(s.knows_readings for s in earlier) or scheduler.knows_readings
            return first_alone and scheduler.ask_first()
        return scheduler.ask_next()

    def _has_room(self, scheduler: PageScheduler) -> bool:
        running = buffered = running_bytes = 0
        for s in self.schedulers:
            for future in s.futures():
                if not future.done():
                    running += 1
                    running_bytes += s.page_bytes
                elif future.exception() is None:
                    buffered += future.result().size
        if running == 0:
            return True
        expected = buffered + running_bytes + scheduler.page_bytes
        return running < self.max_running and expected < self.MAX_BUFFERED_BYTES
