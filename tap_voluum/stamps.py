"""Bookmarks that know the settings they were made under (issue #20 §1).

A windowed stream's bookmark says "every row before this was read". That holds only under
the settings the rows were read with: a report read in UTC and then in New York has its
days (and every `bucketStart`) elsewhere; amounts in USD and then in EUR do not add up.
So each bookmark carries a stamp, the settings that shape the stream's rows as readable
text (`row_settings`), in the state of the stream's context, next to the bookmark:

    {"replication_key": ..., "replication_key_value": ...,
     "row_settings": {"timezone": "UTC", "currency": "", "workspace_ids": "", ...}}

On the next sync a stamp that differs from today's settings means the bookmark says
nothing of today's rows: the stream reads again from `start_date`, with one WARNING naming
each change. The new stamp is written with the bookmark of the first window read (the
first window's STATE), never before: a run stopped before that window leaves the old
bookmark with its old stamp, and the next run sees the change again and starts over, as
it must (an old bookmark beside a new stamp would skip everything before it).

A stamp written before a setting was stamped (or a state from before stamps) is taken as
made under today's settings: only the settings it names are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import date

STAMP_KEY = "row_settings"
"""Where a context's state keeps its stamp (a key of the tap's own, beside the bookmark)."""

STALE_ROWS = {
    "timezone": (
        "rows keyed under the old time zone (another bucketStart for every day) stay in the "
        "target beside the ones read again"
    ),
    "workspace_ids": "rows of workspaces no longer read stay in the target",
    "group_by": "rows keyed by the old grouping stay in the target",
    "granularity": "rows keyed by the old time bucket stay in the target",
}
"""Settings whose change leaves rows in the target that no re-read overwrites (other keys)."""

CLEAR_THEM = (
    "clear them: drop or truncate the stream's table, or `meltano state clear` and a full "
    "sync (README: 'Changing a setting')"
)


def setting_text(value: Any) -> str:
    """A setting as stamp text: "" when unset, a list sorted and comma-joined."""
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


def shown(text: str) -> str:
    """Stamp text as a log line shows it."""
    return text if text else "(not set)"


def stamp_changes(stored: Any, current: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(setting, old, new) for every setting the stored stamp names and today's differs.

    No stamp (a state from before stamps) and settings the stamp does not name (stamped
    since) are taken as made under today's settings.
    """
    if not isinstance(stored, dict):
        return []
    return [
        (name, setting_text(stored[name]), value)
        for name, value in current.items()
        if name in stored and setting_text(stored[name]) != value
    ]


def changes_line(name: str, changes: Iterable[tuple[str, str, str]], first: date) -> str:
    """`campaign_report: timezone changed from UTC to America/New_York since the last sync: …`."""
    said = ", ".join(f"{s} changed from {shown(old)} to {shown(new)}" for s, old, new in changes)
    return f"{name}: {said} since the last sync: reading again from {first:%Y-%m-%d}"


@dataclass(frozen=True)
class RowStamp:
    """The settings that shape one stream's rows for one account, as readable text.

    The bookmark code consults it: `changes` against the stamp a context's state keeps
    (a changed one means the bookmark says nothing of today's rows), `put` beside a
    bookmark just moved.
    """

    settings: Mapping[str, str]

    @classmethod
    def of(cls, settings: Mapping[str, Any], names: Iterable[str]) -> RowStamp:
        """The stamp of an account's `settings`, naming `names`."""
        return cls({name: setting_text(settings.get(name)) for name in names})

    def changes(self, state: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """What changed since the bookmark of `state` was written (read-only)."""
        return stamp_changes(state.get(STAMP_KEY), self.settings)

    def put(self, state: dict[str, Any]) -> None:
        """Keep the stamp beside the bookmark just written in `state`."""
        state[STAMP_KEY] = dict(self.settings)


def announce_changes(
    logger: logging.Logger,
    label: str,
    changes: Sequence[tuple[str, str, str]],
    first: date,
    notices: set[str],
) -> None:
    """One WARNING for a stream (and account) whose settings changed.

    Once per run and setting (`notices`), another says which rows the change leaves in
    the target.
    """
    if not changes or f"stamp:{label}" in notices:
        return
    notices.add(f"stamp:{label}")
    logger.warning("%s", changes_line(label, changes, first))
    for setting, old, new in changes:
        if setting in STALE_ROWS and setting not in notices:
            notices.add(setting)
            logger.warning(
                "%s changed from %s to %s: %s until you %s",
                setting, shown(old), shown(new), STALE_ROWS[setting], CLEAR_THEM,
            )  # fmt: skip
