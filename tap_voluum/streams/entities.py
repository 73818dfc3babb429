"""Configuration entities: one table, one stream class (two with behaviour of their own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import SchemaDirectory, StreamSchema
from typing_extensions import override

from tap_voluum import schemas
from tap_voluum.streams.base import VoluumStream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

SCHEMAS = SchemaDirectory(schemas)


def normalize_country(value: Any) -> Any:
    """Voluum sends a country as `{code, name}` or as a plain string: always give the object."""
    if isinstance(value, str):
        if len(value) == 2 and value.isalpha():
            return {"code": value.upper(), "name": None}
        return {"code": None, "name": value}
    return value


@dataclass(frozen=True)
class Entity:
    """One kind of configuration entity: its stream, its endpoint, its list's wrapper key."""

    name: str
    path: str
    records_key: str


ENTITIES: tuple[Entity, ...] = (
    Entity("campaigns", "/campaign", "campaigns"),
    Entity("offers", "/offer", "offers"),
    Entity("landers", "/lander", "landers"),
    Entity("flows", "/flow", "flows"),
    Entity("traffic_sources", "/traffic-source", "trafficSources"),
    Entity("affiliate_networks", "/affiliate-network", "affiliateNetworks"),
    Entity("workspaces", "/multiuser/workspace", "workspaces"),
)


class EntityStream(VoluumStream):
    """A full-table list of one kind of Voluum entity, archived ones included."""

    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    replication_key = None
    schema: ClassVar[StreamSchema] = StreamSchema(SCHEMAS)

    def __init__(self, tap: Tap, entity: Entity) -> None:
        self.records_key = entity.records_key
        super().__init__(tap, name=entity.name, path=entity.path)

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """Ask for archived entities too: they arrive with `deleted: true`."""
        return {"includeDeleted": "true"}

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Give `country` (and each of `countries`) one shape, then fit the schema."""
        if "country" in row:
            row["country"] = normalize_country(row["country"])
        if isinstance(row.get("countries"), list):
            row["countries"] = [normalize_country(c) for c in row["countries"]]
        return super().post_process(row, context)


class CampaignsStream(EntityStream):
    """`GET /campaign`: also the parent of the live click and visit streams."""

    @override
    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterable[dict]:
        """Live clicks and visits are read for active campaigns only."""
        if not record.get("deleted"):
            yield {**(context or {}), "campaignId": record["id"]}


class WorkspacesStream(EntityStream):
    """`GET /multiuser/workspace`; single-user accounts answer 403/404 and have none."""

    absent_means = "a single-user account has no workspaces"

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """The workspace list takes no parameters."""
        return {}


_STREAM_CLASSES: dict[str, type[EntityStream]] = {
    "campaigns": CampaignsStream,
    "workspaces": WorkspacesStream,
}


def entity_streams(tap: Tap) -> list[EntityStream]:
    """One stream per entity of `ENTITIES`."""
    return [_STREAM_CLASSES.get(e.name, EntityStream)(tap, e) for e in ENTITIES]
