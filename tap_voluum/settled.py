"""What the tap settled on when it met this Voluum: one block, a line each, no secret.

Public clients disagree on details of the real API (`../shared/voluum-api.md` §9-§11);
the tap learns the reading each account's Voluum answers to (`readings.Readings`) and
checks which past days it restated (`restated_days`). `--test`, and every sync at its end
(INFO), print what it settled on, ready to paste into a bug report: the `groupBy`
spellings, whether `sort` was accepted, the page size Voluum served, the event log's time
format, columns left out, the widest span accepted, each account's restatement horizon.
No key, token or address with credentials is ever in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from tap_voluum.readings import Readings
    from tap_voluum.restated_days import RestatedDays
    from tap_voluum.streams.dimensions import Dimension

HEADER = "what tap-voluum settled on for this Voluum (paste it into a bug report):"


def settled_lines(
    readings: Readings,
    dimensions: Iterable[Dimension],
    accounts: Iterable[str],
    restated: RestatedDays,
    config: Mapping[str, Any],
) -> list[str]:
    """The block's lines: the readings in use (every account's), then each account's check."""
    known = readings.snapshot()
    spellings = {d.group_by: readings.spelling(d.group_by, d.candidates) for d in dimensions}
    lines = [HEADER]
    lines.append(
        "  groupBy: " + (", ".join(f"{k}={v}" for k, v in sorted(spellings.items())) or "-")
    )
    refused = known["sort_refused"]
    ids = "; no id column accepted" if known["id_sorts_refused"] else ""
    lines.append(f"  sort: {'refused for ' + ', '.join(refused) if refused else 'accepted'}{ids}")
    asked = int(config.get("page_size") or 0)
    served = known["page_served"]
    lines.append(f"  page size: {served or asked} rows served ({asked} asked)")
    left = [*known["columns_refused"], *(f"all on {p}" for p in known["columns_left_out"])]
    lines.append(f"  columns left out: {', '.join(left) or 'none'}")
    span = known["widest_span_days"]
    lines.append(f"  widest span: {f'{span} days (wider refused)' if span else 'no span refused'}")
    to = ", `to` sent" if known["event_log_sends_to"] else ""
    lines.append(f"  event log: from/to as {known['event_log_time']}{to}")
    lines += [f"  {account}: {restated.describe(account)}" for account in accounts]
    return lines
