"""Which past days Voluum restated since the last sync (issue #24 §1), pure arithmetic.

Each sync the read path asks Voluum for every day's figures over a horizon (`horizon`,
cut by `check_windows`), prints each day (`day_print`) and compares the prints with the
ones kept in the state (`DayPrints`): a day whose print differs was restated and is read
again. A day never printed (a first sync, a new day, fingerprints just reset) is not
restated: the streams' normal range reads it.

Prints live in the state beside the settings that shape the figures (`stamp`): a changed
time zone, currency, workspace list or conversion time mode starts them afresh, as the
settings stamp restarts the streams. A day's new print is kept only once every stream
re-read it (`DayPrints.updated(keep_old=...)`), so a sync stopped mid-way restates the
day again next time.

Nothing here speaks HTTP, knows a stream or imports singer-sdk.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

FIGURES = ("visits", "clicks", "conversions", "revenue", "cost")
"""The figures every day is printed by, before the account's custom columns."""
CUSTOM_FIGURE = re.compile(r"^custom(Conversions|Revenue)(\d+)$")
"""Custom conversion and revenue columns, as the streams name them (`dimensions.py`)."""
PRINT_CHARS = 6
"""6 base64url characters, 36 bits: a changed day keeps its print with odds 1 in 6.9e10."""
_PRINT = re.compile(rf"[A-Za-z0-9_-]{{{PRINT_CHARS}}}")
_PLACES = Decimal("0.000001")
"""Amounts are rounded to 6 places: Voluum's have 4 at most, float noise sits far below."""
_DIGITS = Context(prec=60, rounding=ROUND_HALF_EVEN)
FORMAT = 1
"""The state's format: another one is read as no fingerprints."""


def figure_columns(extra: Iterable[str]) -> tuple[str, ...]:
    """`FIGURES`, then the custom conversion and revenue columns among `extra`.

    Other columns are left out (formulas of these figures, entity attributes). The order
    does not depend on `extra`'s: conversions by number, then revenues by number.
    """
    custom = {m[0]: (m[1], int(m[2])) for c in extra if (m := CUSTOM_FIGURE.match(c))}
    return FIGURES + tuple(sorted(custom, key=custom.__getitem__))


def figure_text(value: Any) -> str:
    """One figure as print text: the same amount always reads the same.

    12, 12.0, "12.00" and Decimal("12") read "12"; 0.1 + 0.2 reads "0.3" (rounded to 6
    places); None, "" and a missing figure read "0"; text that is no number stays as it is.
    """
    if value is None or value == "":
        return "0"
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    try:
        rounded = number.quantize(_PLACES, context=_DIGITS).normalize(_DIGITS)
    except InvalidOperation:  # more than 54 digits before the point: as it is
        return format(number, "f")
    return "0" if rounded.is_zero() else format(rounded, "f")


def day_print(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A compact, stable digest of one day's figures (`PRINT_CHARS` base64url characters).

    Figures that read "0" are left out, so a column added or dropped that holds nothing on
    that day (a day without a row: `{}`) leaves its print as it was; the order of
    `columns` does not count.
    """
    pairs = sorted((c, figure_text(row.get(c))) for c in set(columns))
    text = ";".join(f"{name}={value}" for name, value in pairs if value != "0")
    digest = hashlib.blake2b(text.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()[:PRINT_CHARS]


def horizon(end_day: date, restatement_days: int, start_day: date) -> tuple[date, date] | None:
    """The days checked: `restatement_days` local days ending at `end_day`, inclusive.

    Never before `start_day`; None when `restatement_days` is 0 (off) or nothing is left.
    `end_day` is the range's last local day (the day of the hour before its end).
    """
    if restatement_days <= 0:
        return None
    first = max(end_day - timedelta(days=restatement_days - 1), start_day)
    return (first, end_day) if first <= end_day else None


def check_windows(first: date, last: date, max_days: int = 31) -> list[tuple[date, date]]:
    """`first .. last` (inclusive) cut into spans of at most `max_days` days."""
    if max_days < 1:
        raise ValueError(f"max_days must be at least 1, not {max_days}")
    spans: list[tuple[date, date]] = []
    day = first
    while day <= last:
        end = min(day + timedelta(days=max_days - 1), last)
        spans.append((day, end))
        day = end + timedelta(days=1)
    return spans


def day_prints(
    rows: Mapping[date, Mapping[str, Any]], first: date, last: date, columns: Sequence[str]
) -> dict[date, str]:
    """Every day's print from `first` to `last`; a day without a row prints as nothing."""
    days = (last - first).days + 1
    return {
        day: day_print(rows.get(day, {}), columns)
        for day in (first + timedelta(days=n) for n in range(max(days, 0)))
    }


@dataclass(frozen=True)
class DayPrints:
    """Each day's print from the last sync, under the settings they were printed with."""

    stamp: dict[str, str]
    """Settings that shape the figures, as text: timezone, currency, workspace_ids, ..."""
    prints: dict[date, str] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """A compact JSON value: one comma-separated slot per day from `first`, "" unprinted."""
        if not self.prints:
            return {"format": FORMAT, "stamp": dict(self.stamp), "first": None, "prints": ""}
        first, last = min(self.prints), max(self.prints)
        slots = (
            self.prints.get(first + timedelta(days=n), "") for n in range((last - first).days + 1)
        )
        return {
            "format": FORMAT,
            "stamp": dict(self.stamp),
            "first": first.isoformat(),
            "prints": ",".join(slots),
        }

    @classmethod
    def from_state(cls, value: Any, stamp: Mapping[str, str]) -> tuple[DayPrints, str | None]:
        """The prints kept in the state, under today's `stamp`, and why none were kept.

        None, a value this version cannot read, or prints made under other settings give
        no prints and a short reason. Only settings both stamps name are compared (a
        setting stamped since is taken as unchanged, as `stamps.py` does).
        """
        fresh = cls(dict(stamp))
        if value is None:
            return fresh, "no fingerprints yet"
        try:
            kept, prints = _decode(value)
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            return fresh, f"fingerprints unreadable ({error})"
        changed = [k for k in kept if k in stamp and kept[k] != stamp[k]]
        if changed:
            return fresh, f"{', '.join(changed)} changed since the last fingerprints"
        return cls(dict(stamp), prints), None

    def restated(self, now: Mapping[date, str], *, before: date | None = None) -> list[date]:
        """Days printed before and now whose print differs, sorted (only before `before`)."""
        return sorted(
            day
            for day, print_ in now.items()
            if day in self.prints
            and self.prints[day] != print_
            and (before is None or day < before)
        )

    def updated(
        self,
        now: Mapping[date, str],
        *,
        keep_old: Iterable[date] = (),
        horizon: tuple[date, date],
    ) -> DayPrints:
        """The prints to keep: `now`'s over the old, inside `horizon` only.

        A day in `keep_old` (a stream failed before it re-read it) keeps its old print, or
        none, so the next sync restates it again. Old prints of days `now` lacks (a check
        window that failed) are kept.
        """
        first, last = horizon
        prints = {**self.prints, **now}
        for day in keep_old:
            if day in self.prints:
                prints[day] = self.prints[day]
            else:
                prints.pop(day, None)
        inside = {day: p for day, p in prints.items() if first <= day <= last}
        return DayPrints(dict(self.stamp), dict(sorted(inside.items())))


def _decode(value: Any) -> tuple[dict[str, str], dict[date, str]]:
    """(stamp, prints) from a state value; raises on anything else."""
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__}, not an object")
    if value.get("format") != FORMAT:
        raise ValueError(f"format {value.get('format')!r}, not {FORMAT}")
    stamp = value["stamp"]
    if not isinstance(stamp, dict) or not all(isinstance(v, str) for v in stamp.values()):
        raise TypeError("stamp is not an object of texts")
    text = value["prints"]
    if not isinstance(text, str):
        raise TypeError("prints is not a text")
    if not text:
        return stamp, {}
    first = date.fromisoformat(value["first"])
    prints: dict[date, str] = {}
    for n, slot in enumerate(text.split(",")):
        if slot and not _PRINT.fullmatch(slot):
            raise ValueError(f"slot {n} is {slot[:12]!r}")
        if slot:
            prints[first + timedelta(days=n)] = slot
    return stamp, prints


def _prefix(account_label: str) -> str:
    """`north: ` with several accounts; nothing with one (`account_label` is then "")."""
    return f"{account_label}: " if account_label else ""


def _days(first: date, last: date) -> str:
    return f"{first:%Y-%m-%d}" if first == last else f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}"


def changed_line(account_label: str, days: Sequence[date], streams: int) -> str:
    """`north: 6 past days changed since the last sync (2026-02-03 .. 2026-03-01); ...`."""
    if not days:
        raise ValueError("changed_line needs the days that changed (else unchanged_line)")
    count = len(days)
    them = "it" if count == 1 else "them"
    return (
        f"{_prefix(account_label)}{count} past day{'' if count == 1 else 's'} changed since "
        f"the last sync ({_days(min(days), max(days))}); re-reading {them} in "
        f"{streams} stream{'' if streams == 1 else 's'}"
    )


def unchanged_line(account_label: str, checked: tuple[date, date]) -> str:
    """`north: no past day changed since the last sync (checked 2026-01-01 .. 2026-03-31)`."""
    return (
        f"{_prefix(account_label)}no past day changed since the last sync "
        f"(checked {_days(*checked)})"
    )


def fresh_line(account_label: str, checked: tuple[date, date], reason: str) -> str:
    """`north: no fingerprints yet; fingerprinting 2026-01-01 .. 2026-03-31 for the next sync`."""
    return f"{_prefix(account_label)}{reason}; fingerprinting {_days(*checked)} for the next sync"
