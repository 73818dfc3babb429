"""The record path of windowed streams: page bodies to records to RECORD lines.

- Decoding: only the wanted fields of each row are decoded (`page_decoder`), typed as the
  stream's schema declares them (a page holding a value of another shape is fitted to the
  schema value by value, `tap_voluum.shapes`), then made into records a chunk at a time
  (`records_in_chunks`); the body and each chunk's rows are let go
  as soon as they are used, so a 10,000-row page never lives three times over.
- Checks per chunk, summed in C: repeated keys dropped (`unseen`), the reconciler's sums
  (`add_up`).
- Writing: the SDK writes each record through `pop_deselected_record_properties`, type
  conformance, the stream maps, a `RecordMessage` and `MsgSpecWriter` (which flushes stdout
  after every message): about half the time of a large report sync. A record here already
  carries only the selected fields (popping would change nothing) and its types already
  match (conformance is off); `RecordWriter` puts it through the same stream maps (their
  `transform`) and encodes the same JSON lines (same encoder, same keys in the same order)
  into a buffer. Any other case takes the SDK's path (`sdk_path_reason`). Records still go
  through the SDK's `_sync_records` loop: bookmarks, `record_count` and STATE are the SDK's,
  and STATE goes out after the records it covers.
"""

from __future__ import annotations

import math
import operator
import sys
from datetime import datetime, timezone
from itertools import repeat
from typing import TYPE_CHECKING, Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter, enc_hook
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform, StreamMap

from tap_voluum.sdk_compat import tap_of
from tap_voluum.shapes import RowDecoder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from singer_sdk import Stream

    from tap_voluum.streams.reconcile import Reconciler

# The encoder `MsgSpecWriter` uses (`singer_sdk.contrib.msgspec.encoder`), built the same way.
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")
ROWS_PER_CHUNK = 1000
"""Rows made into records at a time: a page's records are never all alive at once."""


def page_decoder(
    fields: tuple[str, ...], schema: Mapping[str, Any], untyped: Iterable[str] = ()
) -> RowDecoder:
    """A decoder of a report page that builds only `fields` of each row, fitting `schema`.

    Voluum's rows carry dozens of fields beyond those asked for, and each page its totals
    and column metadata: skipping them in msgspec keeps a 10,000-row page small and fast.
    A field Voluum leaves out comes back as `msgspec.UNSET`. Values arrive typed as the
    schema declares them, or fitted to it (`tap_voluum.shapes.RowDecoder`).
    """
    return RowDecoder(fields, schema, untyped)


def records_in_chunks(
    rows: list[Any],
    *,
    non_null: tuple[str, ...],
    complete: Callable[[dict], None],
    unselected: tuple[str, ...],
    stamp: Mapping[str, Any],
) -> Iterator[list[dict]]:
    """Decoded rows as records, in order, `ROWS_PER_CHUNK` at a time (`rows` is emptied).

    Each record: the row's fields (one Voluum left out stays out), `non_null` keys made ""
    when null, completed (bucket, times), `unselected` helper fields dropped, `stamp`ed.
    """
    rows.reverse()  # chunks are cut from the end, so that each one is freed when done
    while rows:
        chunk = rows[-ROWS_PER_CHUNK:]
        del rows[-ROWS_PER_CHUNK:]
        chunk.reverse()
        records: list[dict] = msgspec.to_builtins(chunk)  # leaves UNSET fields out
        del chunk
        for record in records:
            for key in non_null:
                if record.get(key) is None:
                    record[key] = ""
            complete(record)
            for field in unselected:
                record.pop(field, None)
            record.update(stamp)
        yield records


def unseen(records: list[dict], seen: set[int], keys: tuple[str, ...]) -> list[dict]:
    """The records whose key is not in `seen` yet (which then holds theirs too).

    Keys are kept as their 64-bit hash, a fifth of the memory of the keys themselves. Two
    distinct keys sharing a hash (odds about 1e-9 in a 200,000-row window) would drop a
    row; the window's row count then falls short of `totalRows` and the window fails
    loudly: it is never bookmarked short.
    """
    if not keys:
        return records
    get = operator.itemgetter(*keys)
    fresh: list[dict] = []
    for record in records:
        try:
            key = hash(get(record))
        except KeyError:
            key = hash(tuple(record.get(k) for k in keys))
        if key not in seen:
            seen.add(key)
            fresh.append(record)
    return fresh


def add_up(reconciler: Reconciler, records: list[dict]) -> None:
    """Give the reconciler a chunk's sums in one `add`, as adding each record would.

    Each column is summed in C (a missing value counts as nothing, as in `add`); a column
    holding anything else than numbers (null, text, a fractional count) is summed value by
    value with `add`'s own rules, and a null there makes the metric unknown this window.
    """
    n = len(records)
    sums: dict[str, float] = {}
    nulls: list[str] = []
    for metric in reconciler.counts:
        values = map(dict.get, records, repeat(metric, n), repeat(0, n))
        try:
            count = sum(values)
        except TypeError:
            count = None
        if type(count) is not int:
            count = sum(int(v) for v in _numbers(records, metric, nulls))
        sums[metric] = count
    for metric in reconciler.money:
        values = map(dict.get, records, repeat(metric, n), repeat(0.0, n))
        try:
            sums[metric] = math.fsum(values)
        except TypeError:
            sums[metric] = math.fsum(float(v) for v in _numbers(records, metric, nulls))
    reconciler.add(sums)
    if nulls:
        reconciler.add_nulls(nulls)


def _numbers(records: list[dict], metric: str, nulls: list[str]) -> Iterator[float]:
    null = False
    for record in records:
        value = record.get(metric, 0)
        if isinstance(value, (int, float)):
            yield value
        elif value is None:
            null = True
    if null:
        nulls.append(metric)


def sdk_path_reason(stream: Stream, written: Iterable[str]) -> str | None:
    """Why `stream`'s records must take the SDK's path (None: they may go straight out).

    `written`: every field a record of this stream may carry.
    """
    mask = stream.mask
    reasons = {
        "the tap writes messages with another writer": type(tap_of(stream).message_writer)
        is not MsgSpecWriter,
        "records are type-conformed": stream.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE,
        "full-table records carry a table version": stream.replication_method != "INCREMENTAL",
        "a field it writes is not selected": not all(
            mask[("properties", field)] for field in written
        ),
    }
    return next((reason for reason, found in reasons.items() if found), None)


class RecordWriter:
    """One stream's RECORD lines, encoded as `MsgSpecWriter` would, written a chunk at a time.

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
                None if _unchanged(m) else m.transform,
            )
            for m in stream.stream_maps
        ]
        self.buffer = bytearray()

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
        """Write the buffered lines to stdout."""
        if not self.buffer:
            return
        data = bytes(self.buffer)
        self.buffer.clear()
        out = sys.stdout.buffer
        while data:
            written = out.write(data)  # a raw (unbuffered) stdout may take only a part
            data = data[written if written is not None else len(data) :]
        out.flush()


def _unchanged(stream_map: StreamMap) -> bool:
    """Whether a map gives back each record as it is (no expression, no flattening)."""
    return type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled
