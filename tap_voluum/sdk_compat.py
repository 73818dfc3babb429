"""The singer-sdk private members tap-voluum relies on, fenced in one place.

Each is called by keyword, with the reason it is needed; `tests/test_sdk_compat.py` fails
with a clear message when the installed SDK changes the signature or the behaviour of one
of them.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import msgspec
from singer_sdk import Stream, Tap, metrics
from singer_sdk.contrib.msgspec import MsgSpecWriter, enc_hook
from singer_sdk.helpers._util import load_json
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform, StreamMap
from singer_sdk.pagination import BaseAPIPaginator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import requests
    from singer_sdk import RESTStream
    from singer_sdk.helpers.types import Context

S = TypeVar("S", bound=Stream)
TapT = TypeVar("TapT", bound=Tap)
T = TypeVar("T")

# The encoder `MsgSpecWriter` uses (`singer_sdk.contrib.msgspec.encoder`), built the same way.
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")


def prepare_request(
    stream: RESTStream, *, context: Context | None, token: Any
) -> requests.PreparedRequest:
    """The request for the page `token` names, prepared as the SDK's paging loop prepares it.

    Why: windowed streams ask for their pages through a thread pool, not through the
    SDK's sequential `request_records` loop; `_prepare_request` is that loop's step from
    a page token to a prepared request (`get_http_request`, then `build_prepared_request`).
    """
    return stream._prepare_request(context=context, page=_TokenAt(token))


_COUNT_LOCK = threading.Lock()


class _TokenAt(BaseAPIPaginator[Any]):
    """A paginator standing at one page token (what `_prepare_request` reads of it)."""

    def get_next(self, response: requests.Response) -> Any:  # pragma: no cover - never paged
        """One page only."""
        return None


def request_page(
    stream: RESTStream,
    *,
    prepared_request: requests.PreparedRequest,
    context: Context | None,
    counter: metrics.Counter,
    read: Callable[[requests.Response], T],
) -> T:
    """Send one page as `RESTStream.request_records` does, and `read` it inside the retries.

    Why: `request_records` runs `_request` (auth, timing metric, `validate_response`)
    through `request_decorator`, counts the request and updates the sync costs, one page
    after another; windowed streams send their pages from a thread pool, so they take
    that one step. `read` (the page's paging figures) is retried with the request: a body
    cut short is a transient fault like a 503.
    """

    def attempt(prepared: requests.PreparedRequest, ctx: Context | None) -> Any:
        response = stream._request(prepared_request=prepared, context=ctx)
        return response, read(response)

    answer = stream.request_decorator(attempt)(prepared_request, context)
    response, result = cast("tuple[requests.Response, T]", answer)
    with _COUNT_LOCK:  # pages are sent from several threads
        counter.increment()
    stream.update_sync_costs(prepared_request, response, context)
    return result


def write_state(stream: Stream, *, force: bool = False) -> None:
    """Write a STATE message now (if anything changed since the last, or `force`).

    Why: windowed streams bookmark after every window, not every `STATE_MSG_FREQUENCY`
    records, so a sync killed between windows resumes at the next one; a tap-level entry
    just changed (`keep_tap_entry`) goes out at once with `force` (the SDK writes a STATE
    only when its state manager says it is not flushed).
    """
    if force:
        stream.state_manager.is_flushed = False
    stream._write_state_message()


def build_tap(
    cls: type[TapT], *, config: Any, state: IO[str] | None = None, catalog: IO[str] | None = None
) -> TapT:
    """The tap `Tap.invoke` builds from its CLI options (`--config`, `--state`, `--catalog`).

    Why: `Tap.sync_all` is final and `Tap.invoke` builds the tap and syncs in one step,
    with no hook after the sync; tap-voluum syncs the tap itself (`TapVoluum.invoke`) to
    end a run some of whose streams failed in one line and exit 1. `--about` stays the
    SDK's: `PluginBase.invoke`, which `Tap.invoke` calls first, handles it alone.
    """
    return cls(
        config=config.config if config else None,
        state=None if state is None else load_json(state.read()),
        catalog=None if catalog is None else load_json(catalog.read()),
        parse_env_config=bool(config and config.parse_env),
        validate_config=True,
    )


def print_about(cls: type[Tap], *, about: bool, about_format: str | None) -> None:
    """`--about`: print the tap's description and exit, as `Tap.invoke` does first.

    Why: see `build_tap`; `PluginBase.invoke` is the step of `Tap.invoke` that handles
    `--about` alone (the parent class's method, reached past `Tap.invoke`).
    """
    super(Tap, cls).invoke(about=about, about_format=about_format)


def bookmark_ahead(stream: Stream, context: Context | None) -> Any:
    """The bookmark a stream's sync of `context` will start from, read without writing.

    Why: a stream planned before its sync begins (`sync_ahead`) must not create its state
    early; the SDK has no read-only accessor, so its layout is read here: `bookmarks` →
    stream → (`partitions` → the one whose `context` matches) → `replication_key_value`,
    when `replication_key` is the stream's.
    """
    state = peek_context_state(stream, context)
    if state.get("replication_key") != stream.replication_key:
        return None
    return state.get("replication_key_value") or None


def peek_context_state(stream: Stream, context: Context | None) -> Mapping[str, Any]:
    """The state of a stream's `context` as the input state left it, read without writing.

    Why: `Stream.get_context_state` creates the entry it returns; a stream planned ahead,
    or a stamp compared before the sync writes its starting value, must not. The SDK's
    layout: `bookmarks` → stream → (`partitions` → the one whose `context` matches).
    """
    state = stream.tap_state.get("bookmarks", {}).get(stream.name) or {}
    if context:
        partitions = state.get("partitions") or []
        state = next((p for p in partitions if p.get("context") == dict(context)), {})
    return state


def tap_entry(state: Mapping[str, Any] | None, key: str) -> Any:
    """A tap-level entry of an input state (`--state`, Meltano's stored state), or None.

    Why: `Tap.load_state` copies the input's `bookmarks` alone into `Tap.state`; an entry
    of the tap's own beside them must be read from the input and put back (`keep_tap_entry`).
    """
    return (state or {}).get(key)


def keep_tap_entry(tap: Tap, key: str, value: Any) -> None:
    """Put a tap-level entry in `Tap.state`: every STATE message carries it from now on.

    Why: each STATE the SDK writes (after a stream, after a window, on SIGTERM) is
    `Tap.state` whole (`StateWriter.write_state`), and Meltano keeps a STATE's value whole.
    The value is replaced, never changed in place: a STATE being copied out meanwhile (in
    another thread) sees the old value or the new one. Set the key once early (before any
    thread runs) so `Tap.state` never changes size while it is copied.
    """
    state: dict[str, Any] = tap.state  # type: ignore[assignment]  # a TypedDict of bookmarks
    state[key] = value


def tap_of(stream: Stream) -> Tap:
    """The tap a stream belongs to.

    Why: the SDK keeps it only as `Stream._tap`; the record writer checks the tap's message
    writer, and a windowed stream finds the stream synced after it.
    """
    return stream._tap


def window_hooks(cls: type[S]) -> type[S]:
    """Give a windowed stream class its record writer and its window-moved bookmarks.

    Why, records: `Stream._write_record_message(record)` is where the SDK's `_sync_records`
    loop writes each record (deselected properties popped, stream maps, a `RecordMessage`,
    a flush); it has no public hook. A stream whose `record_writer` is set writes through
    it (`RecordWriter`); every STATE (`Stream._write_state_message`) first flushes what it
    buffered, so a STATE always follows the records it covers.

    Why, bookmarks: the SDK moves a stream's bookmark to each record's replication key
    value (`Stream._increment_stream_state`, no public hook) and writes it in every STATE,
    including the one its SIGTERM handler writes mid-window. A window's rows come sorted
    by their dimension, not by time, so a bookmark taken from the last record written could
    pass rows of the window not written yet: records leave the bookmark alone and the
    stream moves it when a window is whole (`move_bookmark`).

    A decorator, not a base class: the three SDK members are the class's own, and its
    bases stay the tap's stream classes.
    """

    def _write_record_message(self: Any, record: dict[str, Any]) -> None:
        writer = self.record_writer
        if writer is None:
            super(cls, self)._write_record_message(record=record)
        else:
            writer.write(record)

    def _write_state_message(self: Any) -> None:
        if self.record_writer is not None:
            self.record_writer.flush()
        super(cls, self)._write_state_message()

    def _increment_stream_state(
        self: Any, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """Records move no bookmark (windows do)."""

    cls._write_record_message = _write_record_message  # type: ignore[method-assign]
    cls._write_state_message = _write_state_message  # type: ignore[method-assign]
    cls._increment_stream_state = _increment_stream_state  # type: ignore[method-assign]
    return cls


def move_bookmark(stream: Stream, context: Context | None, value: str) -> dict[str, Any]:
    """Set the bookmark of `context` to `value` (a window was written whole); its state.

    The SDK's own layout: `replication_key` and `replication_key_value` in the context's
    state (`Stream.get_context_state`, public).
    """
    state = stream.get_context_state(context)
    state["replication_key"] = stream.replication_key
    state["replication_key_value"] = value
    return state


def sync_units(tap: Tap) -> list[tuple[Stream, Context | None]]:
    """Every (stream, context) `Tap.sync_all` syncs, in the order it syncs them.

    Why: a stream planned ahead of its sync (`sync_ahead`) must know which unit comes
    next. `Tap.sync_all` walks `tap.streams` in order, skips a stream neither selected nor
    with a selected child and every child stream (its parent syncs it); `Stream.sync`
    walks the stream's `partitions` in order (none: one unit without a context).
    """
    units: list[tuple[Stream, Context | None]] = []
    for stream in tap.streams.values():
        if (stream.selected or stream.has_selected_descendents) and not stream.parent_stream_type:
            contexts: list[Context | None] = list(stream.partitions or ()) or [None]
            units += [(stream, context) for context in contexts]
    return units


def sdk_path_reason(stream: Stream, written: Iterable[str]) -> str | None:
    """Why `stream`'s records must take the SDK's path (None: they may go straight out).

    `written`: every field a record of this stream may carry.
    """
    mask = stream.mask
    reasons = {
        "the tap writes messages with another writer": not isinstance(
            tap_of(stream).message_writer, MsgSpecWriter
        ),
        "records are type-conformed": stream.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE,
        "full-table records carry a table version": stream.replication_method != "INCREMENTAL",
        "a field it writes is not selected": not all(
            mask[("properties", field)] for field in written
        ),
    }
    return next((reason for reason, found in reasons.items() if found), None)


class RecordWriter:
    """One stream's RECORD lines, encoded as `MsgSpecWriter` would, written a chunk at a time.

    Why: the SDK writes each record through `pop_deselected_record_properties`, type
    conformance, the stream maps, a `RecordMessage` and `MsgSpecWriter` (which flushes
    stdout after every message): about half the time of a large report sync. A record of a
    windowed stream already carries only the selected fields and types that match (any
    other case takes the SDK's path: `sdk_path_reason`). Records still go through the SDK's
    `_sync_records` loop: `record_count` and STATE are the SDK's, and it must know a record
    went out since its last STATE (`state_manager.is_flushed`).

    As the SDK does, each record goes through each of the stream's maps (`transform`: the
    map's expressions, filter and flattening), and each record a map returns is a line
    under the map's stream name; with no map and no flattening the record goes as it is.
    Lines gather in a buffer that goes to stdout after each chunk of records and before any
    STATE message (`RecordHook`), so a STATE always follows the records it covers.
    """

    def __init__(self, stream: Stream) -> None:
        self.state_manager = stream.state_manager
        self.maps = [
            (
                b'{"type":"RECORD","stream":' + _ENCODER.encode(m.stream_alias) + b',"record":',
                None if unchanged_map(m) else m.transform,
            )
            for m in stream.stream_maps
        ]
        self.buffer = bytearray()
        self.write = self.for_page()
        """Writes one record (into the buffer), stamped with its page's extraction time."""

    def new_page(self, extracted: datetime | None = None) -> None:
        """The records that follow are of a page taken in now (or at `extracted`)."""
        self.write = self.for_page(extracted)

    def for_page(self, extracted: datetime | None = None) -> Callable[[dict[str, Any]], None]:
        """The write function for the records of one page, stamped with its extraction time.

        The SDK stamps each record with the time it writes it; here every record of a page
        carries the time the page was taken in (UTC, to the microsecond).
        """
        when = (extracted or datetime.now(timezone.utc)).astimezone(timezone.utc)
        suffix = b',"time_extracted":' + _ENCODER.encode(when) + b"}\n"
        encode_into = _ENCODER.encode_into
        buffer = self.buffer
        state_manager = self.state_manager
        maps = self.maps
        if len(maps) == 1 and maps[0][1] is None:
            prefix = maps[0][0]

            def write_record(record: dict[str, Any]) -> None:
                nonlocal buffer
                buffer += prefix
                encode_into(record, buffer, -1)
                buffer += suffix
                state_manager.is_flushed = False  # as the SDK does after each record

            return write_record

        def write_mapped(record: dict[str, Any]) -> None:
            nonlocal buffer
            for prefix, transform in maps:
                mapped = record if transform is None else transform(record)
                if mapped is not None:
                    buffer += prefix
                    encode_into(mapped, buffer, -1)
                    buffer += suffix
            state_manager.is_flushed = False

        return write_mapped

    def flush(self) -> None:
        """Write the buffered lines to stdout, whole: no signal handler writes in between.

        The SDK's SIGTERM/SIGINT handler writes a STATE line to the same stdout; run in
        the middle of a large write it would cut a RECORD line in two. The signals wait
        until the lines are out (they are delivered as soon as the write ends).
        """
        if not self.buffer:
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        with signals_held():
            out = sys.stdout.buffer
            while data:
                written = out.write(data)  # a raw (unbuffered) stdout may take only a part
                data = data[written if written is not None else len(data) :]
            out.flush()


class WholeLineWriter(MsgSpecWriter):
    """The SDK's msgspec writer, each message written whole: no signal handler in between.

    Why: the SDK's SIGTERM/SIGINT handler writes a STATE line to stdout from the main
    thread; run while a large write to a full pipe is retried, it would cut a line in two.
    """

    def write_message(self, message: Any) -> None:
        """Write one message with SIGTERM and SIGINT held."""
        with signals_held():
            super().write_message(message)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT for the main thread while a block runs (where supported)."""
    held = {signal.SIGTERM, signal.SIGINT}
    can_hold = (
        hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    )
    if can_hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        if can_hold:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def unchanged_map(stream_map: StreamMap) -> bool:
    """Whether a map gives back each record as it is (no expression, no flattening)."""
    return type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled


# The private members above, with the parameters tap-voluum passes by keyword (None: an
# attribute, not a method).
PRIVATE_MEMBERS: dict[str, tuple[str, ...] | None] = {
    "RESTStream._request": ("prepared_request", "context"),
    "RESTStream._prepare_request": ("context", "page"),
    "Stream._write_state_message": (),
    "Stream._write_record_message": ("record",),
    "Stream._tap": None,
    "Stream._increment_stream_state": ("latest_record", "context"),
}
