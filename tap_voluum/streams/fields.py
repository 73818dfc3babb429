"""Schema fragments and field lists the streams share."""

from __future__ import annotations

STRING = {"type": ["string", "null"]}
INTEGER = {"type": ["integer", "null"]}
NUMBER = {"type": ["number", "null"]}
BOOLEAN = {"type": ["boolean", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
KEY_STRING = {"type": ["string"]}
"""A primary-key part: never null."""
KEY_TIMESTAMP = {"type": ["string"], "format": "date-time"}

CUSTOM_VARIABLES = tuple(f"customVariable{n}" for n in range(1, 11))
ATTRIBUTION_FIELDS = (
    "campaignName",
    "offerId",
    "offerName",
    "landerId",
    "landerName",
    "flowId",
    "flowName",
    "trafficSourceId",
    "trafficSourceName",
    "affiliateNetworkId",
    "affiliateNetworkName",
)
"""Where a visit, click or conversion came from and went (besides `campaignId`)."""
VISITOR_FIELDS = (
    "countryCode",
    "countryName",
    "region",
    "city",
    "device",
    "deviceName",
    "brand",
    "model",
    "os",
    "osVersion",
    "browser",
    "browserVersion",
    "connectionType",
    "connectionTypeName",
    "isp",
    "mobileCarrier",
    "ip",
)
"""Who the visitor was: place, device, connection."""
EVENT_FIELDS = ("externalId", *ATTRIBUTION_FIELDS, *VISITOR_FIELDS, *CUSTOM_VARIABLES)
"""Text fields of every conversion and live click or visit."""
