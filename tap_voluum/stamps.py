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

from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from tap_voluum.accounts import account_of
from tap_voluum.sdk_compat import WindowBookmarks, bookmark_ahead, peek_context_state

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import date

    from singer_sdk.helpers.types import Context

    from tap_voluum.client import VoluumClient
    from tap_voluum.run import SyncRun

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


class SettingsStamped(WindowBookmarks):
    """A windowed stream whose bookmarks carry the settings that shape its rows."""

    ROW_SETTINGS: ClassVar[tuple[str, ...]] = ("timezone", "currency", "workspace_ids")
    """The settings that shape every row of this stream (not paging, concurrency, retries)."""

    _announced: frozenset = frozenset()

    if TYPE_CHECKING:  # from `VoluumStream` and `WindowedStream`, later in a stream's MRO
        run: SyncRun

        def range_start_day(self, context: Context | None) -> date:
            """The first local day read."""

        def settings(self, context: Context | None) -> dict[str, Any]:
            """The settings of the context's account."""

        client: VoluumClient

    def row_settings(self, context: Context | None) -> dict[str, str]:
        """The settings that shape the rows of `context`, as readable text: the stamp."""
        settings = self.settings(context)
        return {name: setting_text(settings.get(name)) for name in self.ROW_SETTINGS}

    def settings_changes(self, context: Context | None) -> list[tuple[str, str, str]]:
        """What changed since the bookmark of `context` was written (read-only)."""
        stored = peek_context_state(self, context).get(STAMP_KEY)
        return stamp_changes(stored, self.row_settings(context))

    def resume_value(self, context: Context | None) -> Any:
        """The bookmark the sync starts from, or None when the settings changed: start again."""
        if self.settings_changes(context):
            return None
        return bookmark_ahead(self, context)

    def move_bookmark(self, context: Context | None, value: str) -> None:
        """Set the bookmark of `context`, stamped with the settings its rows were read under."""
        super().move_bookmark(context, value)
        self.get_context_state(context)[STAMP_KEY] = self.row_settings(context)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """The stream's records; first, one WARNING if the settings changed since its bookmark."""
        self.announce_changes(context)
        # In a stream's MRO this is `VoluumStream.get_records`, not `Stream`'s abstract one.
        records: Iterable[dict] = super().get_records(context)  # type: ignore[safe-super,assignment]
        yield from records

    def announce_changes(self, context: Context | None) -> None:
        """One WARNING per stream (and context) whose settings changed.

        Once per run and setting, another says which rows the change leaves in the target.
        """
        changes = self.settings_changes(context)
        key = repr(sorted(dict(context or {}).items()))
        if not changes or key in self._announced:
            return
        self._announced = self._announced | {key}
        several = len(self.client.accounts) > 1
        name = f"{account_of(context)}/{self.name}" if several and context else self.name
        self.logger.warning("%s", changes_line(name, changes, self.range_start_day(context)))
        notices = self.run.notices
        for setting, old, new in changes:
            if setting in STALE_ROWS and setting not in notices:
                notices.add(setting)
                self.logger.warning(
                    "%s changed from %s to %s: %s until you %s",
                    setting, shown(old), shown(new), STALE_ROWS[setting], CLEAR_THEM,
                )  # fmt: skip
