"""Finding other services of the project (Orchest's `get_service(name)`).

    redis_host = berth.get_service("redis")["internal_hostname"]

Each instance listens on its own loopback address; the platform knows which, and
these functions ask it. The answers are returned as the platform sends them.
"""

import urllib.parse

from . import platform
from .platform import PlatformError


class ServiceNotFound(PlatformError, LookupError):
    """No service of that name in this project. Also a PlatformError and a LookupError."""


def get_service(name: str) -> dict:
    """The endpoint of service `name`: a dict with `internal_hostname`, `ports`,
    `external_urls` and `base_paths` (as the platform sends it).

    Raises ServiceNotFound if the project has no such service, PlatformError if the
    platform cannot be asked (BERTH_URL unset, unreachable, other errors).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_service() needs a service name, got {name!r}")
    path = f"/api/v1/services/{urllib.parse.quote(name, safe='')}/endpoint"
    what = f"look up service '{name}'"
    try:
        answer = platform.call("GET", path, what=what)
    except PlatformError as e:
        if e.status == 404:
            raise ServiceNotFound(str(e), status=e.status, code=e.code) from None
        raise
    if not isinstance(answer, dict):
        raise PlatformError(f"cannot {what}: expected a JSON object from the platform, "
                            f"got {type(answer).__name__}")
    return answer


def get_services() -> dict[str, dict]:
    """The endpoints of all services of the project, as {name: endpoint dict}."""
    what = "list the services' endpoints"
    answer = platform.call("GET", "/api/v1/endpoints", what=what)
    services = answer.get("services") if isinstance(answer, dict) else None
    if isinstance(services, list):  # tolerate a list of endpoints that carry their name
        services = {s["name"]: s for s in services if isinstance(s, dict) and "name" in s}
    if not isinstance(services, dict):
        raise PlatformError(f"cannot {what}: the platform's answer has no \"services\" object")
    return services
