"""The record path of windowed streams: page bodies to records to RECORD lines.

- Decoding: only the wanted fields of each row are decoded (`RecordPath`), typed as the
  stream's schema declares them (a page holding a value of another shape is fitted to the
  schema value by value, `tap_voluum.shapes`), then made into records a chunk at a time
  (`records_in_chunks`); the body and each chunk's rows are let go
  as soon as they are used, so a 10,000-row page never lives three times over.
- Checks per chunk, summed in C: repeated keys dropped (`unseen`), the reconciler's sums
  (`add_up`).
- Writing: `sdk_compat.RecordWriter` (the SDK's RECORD lines, buffered).
"""

from __future__ import annotations

import math
import operator
from itertools import repeat
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from tap_voluum.shapes import RowDecoder
    from tap_voluum.streams.pages import Page
    from tap_voluum.streams.reconcile import Reconciler
    from tap_voluum.streams.windows import Window

ROWS_PER_CHUNK = 1000
"""Rows made into records at a time: a page's records are never all alive at once."""


class RecordPath:
    """One read's way from a page body to records: the wanted fields decoded, completed, stamped.

    Voluum's rows carry dozens of fields beyond those asked for, and each page its totals
    and column metadata: only `fields` of each row are built (`shapes.RowDecoder`, typed as
    the schema declares them, or fitted to it), which keeps a 10,000-row page small and fast.
    """

    def __init__(
        self,
        decoder: RowDecoder,
        *,
        non_null: tuple[str, ...],
        completer: Callable[[Window], Callable[[dict], None]],
        unselected: tuple[str, ...],
        stamp: Mapping[str, Any],
    ) -> None:
        self.decoder = decoder
        self.non_null = non_null
        self.completer = completer
        self.unselected = unselected
        self.stamp = stamp

    def chunks(self, window: Window, page: Page) -> Iterator[list[dict]]:
        """The page's records, in order, in chunks; the body is let go once decoded."""
        rows = self.decoder.decode(page.take_body())
        if page.keep is not None:
            del rows[page.keep :]
        return records_in_chunks(
            rows,
            non_null=self.non_null,
            complete=self.completer(window),
            unselected=self.unselected,
            stamp=self.stamp,
        )


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
