"""orchest.services: the endpoints of the project's services (redis, postgres, ...).

    redis_host = orchest.get_service("redis")["internal_hostname"]

The platform answers (berth.get_service), so the dict has Orchest's keys:
internal_hostname, ports, external_urls and base_paths.
"""

from berth.discovery import get_service, get_services

__all__ = ["get_service", "get_services"]
