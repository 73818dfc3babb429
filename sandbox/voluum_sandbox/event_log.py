"""Event log of the dataset, generated from the seed: each entity's timeline.

CREATE, CHANGE, ARCHIVE and RESTORE entries, which also set the entities'
``createdTime``/``updatedTime``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from .catalog import CATEGORY, ENTITY_DIMS
from .formats import DAY_MS, UTC, iso_ms, random_uuid


class EventLogData:
    """Part of :class:`~voluum_sandbox.data.Dataset`: ``event_log`` and ``users``."""

    start_ts: int
    end_ts: int
    archived: dict[str, list[bool]]
    _entities: dict[str, list[dict[str, Any]]]

    def _build_event_log(self, rng: random.Random) -> None:
        """Create the entity timelines (createdTime/updatedTime) and the matching event log."""
        users = [
            {"id": random_uuid(rng), "name": "Sandbox Owner"},
            {"id": random_uuid(rng), "name": "Média Buyer Ünïcode"},
        ]
        client_id = random_uuid(rng)
        start_ms = self.start_ts * 1000
        # Edits spread over the data range, never after today's UTC midnight (no future edits):
        # regular edits end 3 days before the horizon, the same-second pairs come after them.
        today_ms = int(datetime.now(UTC).timestamp() * 1000) // DAY_MS * DAY_MS
        horizon_ms = min(self.end_ts * 1000 - 3_600_000, max(today_ms, start_ms + DAY_MS))
        regular_end = horizon_ms - 3 * DAY_MS
        entries: list[dict[str, Any]] = []

        def add(kind: str, ent: dict[str, Any], when: int, action: str, changes: list[Any]) -> None:
            user = users[0] if rng.random() < 0.7 else users[1]
            entries.append(
                {
                    "id": random_uuid(rng),
                    "clientId": client_id,
                    "editTime": when,
                    "actionType": action,
                    "category": CATEGORY[kind],
                    "entityId": ent["id"],
                    "entityName": ent["name"],
                    "userId": user["id"],
                    "userName": user["name"],
                    "changes": changes,
                }
            )

        def change(kind: str, ent: dict[str, Any], field: str, old: Any, new: Any) -> list[Any]:
            return [
                {
                    "category": CATEGORY[kind],
                    "entityId": ent["id"],
                    "fieldName": field,
                    "nestedChanges": [],
                    "simpleChanges": [
                        {
                            "category": CATEGORY[kind],
                            "fieldName": field,
                            "newEntityId": None,
                            "newValue": new,
                            "oldEntityId": None,
                            "oldValue": old,
                        }
                    ],
                }
            ]

        for kind in ENTITY_DIMS[::-1]:  # networks/sources first, campaigns last
            for i, ent in enumerate(self._entities[kind]):
                created = start_ms - rng.randint(20, 400) * DAY_MS - rng.randrange(DAY_MS)
                add(kind, ent, created, "CREATE", [])
                actions = ["CHANGE"] * rng.randint(0, 2)
                if ent.get("deleted"):
                    actions.append("ARCHIVE")
                elif i % 4 == 1:
                    actions += ["ARCHIVE", "RESTORE"]
                times = sorted(rng.randint(created + 60_000, regular_end) for _ in actions)
                for k, (action, t) in enumerate(zip(actions, times, strict=True)):
                    if action == "CHANGE":
                        field = ("tags", "url", "notes")[k % 3]
                        changes = change(kind, ent, field, f"old-{k}", f"new-{k}")
                    else:
                        old, new = ("false", "true") if action == "ARCHIVE" else ("true", "false")
                        changes = change(kind, ent, "deleted", old, new)
                    add(kind, ent, t, action, changes)
                ent["createdTime"] = iso_ms(created)
                ent["updatedTime"] = iso_ms(times[-1] if times else created)

        # Entries sharing one second (and one with the very same millisecond) on active entities.
        pairs = [
            ("campaign", next((i for i, a in enumerate(self.archived["campaign"]) if not a), 0)),
            ("offer", next((i for i, a in enumerate(self.archived["offer"]) if not a), 0)),
            ("lander", next((i for i, a in enumerate(self.archived["lander"]) if not a), 0)),
            ("flow", 0),
        ]
        base = regular_end // 1000 * 1000 + DAY_MS + 7 * 60_000
        for (kind, i), when in zip(  # noqa: B905 - fixed tuples
            pairs, (base + 120, base + 845, base + DAY_MS + 500, base + DAY_MS + 500)
        ):
            ent = self._entities[kind][i]
            add(kind, ent, when, "CHANGE", change(kind, ent, "tags", "[]", '["sandbox"]'))
            ent["updatedTime"] = iso_ms(when)
        entries.sort(key=lambda e: (e["editTime"], e["id"]))
        self.event_log: list[dict[str, Any]] = entries
        self.users = users
