"""Configuration entities: campaigns, offers, landers, flows, traffic sources, networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import SchemaDirectory, StreamSchema

from tap_voluum import schemas
from tap_voluum.streams.base import VoluumStream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

SCHEMAS = SchemaDirectory(schemas)


def normalize_country(value: Any) -> Any:
    """Voluum sends a country as `{code, name}` or as a plain string: always give the object."""
    if isinstance(value, str):
        if len(value) == 2 and value.isalpha():
            return {"code": value.upper(), "name": None}
        return {"code": None, "name": value}
    return value


class EntityStream(VoluumStream):
    """A full-table list of one kind of Voluum entity, archived ones included."""

    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    replication_key = None
    schema: ClassVar[StreamSchema] = StreamSchema(SCHEMAS)

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """Ask for archived entities too: they arrive with `deleted: true`."""
        return {"includeDeleted": "true"}

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Give `country` (and each of `countries`) one shape."""
        if "country" in row:
            row["country"] = normalize_country(row["country"])
        if isinstance(row.get("countries"), list):
            row["countries"] = [normalize_country(c) for c in row["countries"]]
        return row


class CampaignsStream(EntityStream):
    """`GET /campaign`."""

    name = "campaigns"
    path = "/campaign"
    records_key = "campaigns"

    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterable[dict]:
        """Live clicks and visits are read for active campaigns only."""
        if not record.get("deleted"):
            yield {"campaignId": record["id"]}


class OffersStream(EntityStream):
    """`GET /offer`."""

    name = "offers"
    path = "/offer"
    records_key = "offers"


class LandersStream(EntityStream):
    """`GET /lander`."""

    name = "landers"
    path = "/lander"
    records_key = "landers"


class FlowsStream(EntityStream):
    """`GET /flow`."""

    name = "flows"
    path = "/flow"
    records_key = "flows"


class TrafficSourcesStream(EntityStream):
    """`GET /traffic-source`."""

    name = "traffic_sources"
    path = "/traffic-source"
    records_key = "trafficSources"


class AffiliateNetworksStream(EntityStream):
    """`GET /affiliate-network`."""

    name = "affiliate_networks"
    path = "/affiliate-network"
    records_key = "affiliateNetworks"


class WorkspacesStream(EntityStream):
    """`GET /multiuser/workspace`; single-user accounts answer 403/404 and have none."""

    name = "workspaces"
    path = "/multiuser/workspace"
    records_key = "workspaces"
    absent_means = "a single-user account has no workspaces"

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """The workspace list takes no parameters."""
        return {}


ENTITY_STREAMS: tuple[type[EntityStream], ...] = (
    CampaignsStream,
    OffersStream,
    LandersStream,
    FlowsStream,
    TrafficSourcesStream,
    AffiliateNetworksStream,
    WorkspacesStream,
)
