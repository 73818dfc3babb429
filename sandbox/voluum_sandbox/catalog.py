"""The sandbox's fixed vocabulary: countries, devices, conversion types, dimensions and spellings.

Static tables shared by the data generators, the report engine and the truth oracle. Nothing here
computes over the data.
"""

from __future__ import annotations

# (code, name, ((region, city), ...))
COUNTRIES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("US", "United States", (("California", "San Jose"), ("New York", "New York"))),
    ("GB", "United Kingdom", (("England", "London"), ("Scotland", "Edinburgh"))),
    ("DE", "Germany", (("Bavaria", "München"), ("Berlin", "Berlin"))),
    ("FR", "France", (("Île-de-France", "Paris"), ("Provence-Alpes-Côte d'Azur", "Nice"))),
    ("BR", "Brazil", (("São Paulo", "São Paulo"), ("Rio de Janeiro", "Rio de Janeiro"))),
    ("IN", "India", (("Maharashtra", "Mumbai"), ("Karnataka", "Bengaluru"))),
    ("CA", "Canada", (("Ontario", "Toronto"), ("Québec", "Montréal"))),
    ("MX", "Mexico", (("Jalisco", "Guadalajara"), ("Ciudad de México", "Ciudad de México"))),
    ("JP", "Japan", (("Tokyo", "Tokyo"), ("Osaka", "Osaka"))),
    ("CI", "Côte d'Ivoire", (("Abidjan", "Abidjan"),)),
)
# (name, versions, deviceName, ((brand, model), ...), browser indexes)
OPERATING_SYSTEMS: tuple[
    tuple[str, tuple[str, ...], str, tuple[tuple[str, str], ...], tuple[int, ...]], ...
] = (
    (
        "Android",
        ("14", "13", "12"),
        "Mobile",
        (("Samsung", "Galaxy S23"), ("Xiaomi", "Redmi Note 12"), ("Google", "Pixel 8")),
        (0, 4, 3),
    ),
    ("iOS", ("17.4", "16.6"), "Mobile", (("Apple", "iPhone 15"), ("Apple", "iPhone 13")), (1, 0)),
    ("Windows", ("11", "10"), "Desktop", (("Unknown", "Unknown"),), (2, 5, 3)),
    ("macOS", ("14", "13"), "Desktop", (("Apple", "Macintosh"),), (1, 2, 3)),
    ("Linux", ("",), "Desktop", (("Unknown", "Unknown"),), (2, 3)),
)
BROWSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Chrome Mobile", ("124", "123")),
    ("Safari", ("17", "16")),
    ("Chrome", ("124", "122")),
    ("Firefox", ("125",)),
    ("Samsung Internet", ("24",)),
    ("Edge", ("124",)),
)
# (connectionType, connectionTypeName, isp, mobileCarrier)
CONNECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("MOBILE", "Mobile", "T-Mobile", "T-Mobile"),
    ("BROADBAND", "Broadband/Cable", "Comcast", ""),
    ("MOBILE", "Mobile", "Vodafone", "Vodafone"),
    ("BROADBAND", "Broadband/Cable", "Orange", ""),
)
# (conversionTypeId, conversionType, label of customConversionsN, revenue factor %, transactionId)
CONVERSION_TYPES: tuple[tuple[int, str, str, int, str], ...] = (
    (1, "lead", "Lead", 100, "lead"),
    (2, "deposit", "Deposit", 300, "deposit"),
    (3, "install", "Install", 50, ""),
    (4, "purchase", "Purchase", 200, ""),
    (5, "view", "View", 0, ""),
)
TYPE_CUMULATIVE = (0.45, 0.70, 0.80, 0.92, 1.01)  # cumulative weights of CONVERSION_TYPES
CV2_VALUES = ("banner-300x250", "native-feed", "push", "pop", "Ünïcode-slot ✨")
CV3_VALUES = ("", "sub-a", "sub-b", "sub-c")
# Fixed conversion rates from USD cents: (numerator, denominator).
CURRENCY_RATES: dict[str, tuple[int, int]] = {"USD": (1, 1), "EUR": (92, 100), "GBP": (79, 100)}

ENTITY_DIMS = ("campaign", "offer", "lander", "flow", "traffic-source", "affiliate-network")
CUSTOM_VARIABLE_DIMS = tuple(f"custom-variable-{n}" for n in range(1, 11))
DIMENSIONS = (
    *ENTITY_DIMS,
    "country",
    "os",
    "browser",
    *CUSTOM_VARIABLE_DIMS,
    "day",
    "hour",
)
# Event-log ``category`` of each entity dimension.
CATEGORY = {
    "campaign": "CAMPAIGN",
    "offer": "OFFER",
    "lander": "LANDER",
    "flow": "FLOW",
    "traffic-source": "TRAFFIC_SOURCE",
    "affiliate-network": "AFFILIATE_NETWORK",
}
# Field carrying the identity of each dimension in report rows (also the truth-helper key).
KEY_FIELD = {
    "campaign": "campaignId",
    "offer": "offerId",
    "lander": "landerId",
    "flow": "flowId",
    "traffic-source": "trafficSourceId",
    "affiliate-network": "affiliateNetworkId",
    "country": "countryCode",
    "os": "os",
    "browser": "browser",
    **{f"custom-variable-{n}": f"customVariable{n}" for n in range(1, 11)},
    "day": "day",
    "hour": "hour",
}


def _alias_table() -> dict[str, str]:
    """Build the table of accepted ``groupBy``/``filterN`` spellings (normalised) -> dimension."""
    table: dict[str, str] = {}
    extra = {
        "campaign": ("campaign", "campaignid", "campaignname"),
        "offer": ("offer", "offerid", "offername"),
        "lander": ("lander", "landerid", "landername"),
        "flow": ("flow", "flowid", "flowname"),
        "traffic-source": ("trafficsource", "trafficsourceid", "trafficsourcename"),
        "affiliate-network": ("affiliatenetwork", "affiliatenetworkid", "affiliatenetworkname"),
        "country": ("country", "countrycode", "countryname"),
        "os": ("os",),
        "browser": ("browser",),
        "day": ("day", "date"),
        "hour": ("hour", "hourofday"),
    }
    for dim, names in extra.items():
        for name in names:
            table[name] = dim
    for n in range(1, 11):
        table[f"customvariable{n}"] = f"custom-variable-{n}"
    return table


_ALIASES = _alias_table()


def canonical_dimension(name: str) -> str | None:
    """Map an accepted spelling (``campaign``, ``campaignId``, ``custom-variable-1``...) to a dim.

    Matching ignores case, ``-`` and ``_``.  Returns ``None`` for unknown keys.
    """
    return _ALIASES.get(name.replace("-", "").replace("_", "").lower())


def convert_cents(cents: int, currency: str) -> int:
    """Convert USD cents to ``currency`` cents with the fixed sandbox rate, rounding half up."""
    num, den = CURRENCY_RATES[currency]
    if num == den:
        return cents
    if cents < 0:  # half away from zero, as for a positive amount (refunds, corrections)
        return -convert_cents(-cents, currency)
    return (cents * num * 2 + den) // (2 * den)
