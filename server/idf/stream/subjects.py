"""The subjects telemetry travels on (docs/streaming.md):

    idf.telemetry.<tenant>.<site>.<sensor>   one reading
    idf.maps.<tenant>.<site>                 a site's map after an update
    idf.events.<tenant>.<site>               events of the rules on map updates
    idf.deadletter.<tenant>.<source>         what a bridge refused, with the reason

Every part is one NATS token: 1 to 64 of `A-Z a-z 0-9 _ -`. A name with a dot, a space, a
wildcard (`*`, `>`) or anything else could address other sites' or tenants' subjects, so it is
refused (`ValueError` naming the part), never escaped.
"""

from __future__ import annotations

import re

TELEMETRY, MAPS, EVENTS = "idf.telemetry", "idf.maps", "idf.events"
DEAD_LETTER = "idf.deadletter"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{what} must be 1 to 64 of A-Z a-z 0-9 _ -, got {value[:80]!r}")
    return value


def site_id(name: str, suffix: str = "") -> str:
    """The id of the site a resource name names: "sites/<id>" then `suffix` (e.g. "/energyMap");
    ValueError saying what is wrong otherwise."""
    prefix, _, rest = name.partition("/")
    if prefix != "sites" or not rest.endswith(suffix):
        raise ValueError(f"site must look like sites/{{site_id}}{suffix}")
    return token(rest[: len(rest) - len(suffix)], "site id")


def reading(tenant: str, site: str, sensor: str) -> str:
    return f"{TELEMETRY}.{token(tenant, 'tenant')}.{token(site, 'site')}.{token(sensor, 'sensor')}"


def readings_of(tenant: str, site: str | None = None) -> str:
    """The wildcard of a tenant's (or one site's) readings."""
    return f"{TELEMETRY}.{token(tenant, 'tenant')}." + (
        f"{token(site, 'site')}.*" if site else "*.*"
    )


def map_update(tenant: str, site: str) -> str:
    return f"{MAPS}.{token(tenant, 'tenant')}.{token(site, 'site')}"


def event(tenant: str, site: str) -> str:
    return f"{EVENTS}.{token(tenant, 'tenant')}.{token(site, 'site')}"


def dead_letter(tenant: str, source: str) -> str:
    """Where a bridge parks what it could not take (the reason in the message's headers)."""
    return f"{DEAD_LETTER}.{token(tenant, 'tenant')}.{token(source, 'source')}"
