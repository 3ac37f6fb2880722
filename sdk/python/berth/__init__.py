"""berth: write a service for the berth platform in a few lines.

    import logging
    from berth import Service, notify, Severity

    service = Service()
    service.add_parameter("greeting_phrase", "Hello")

    @service.entrypoint
    def hello(name: str) -> str:
        return f"{service.get_parameter('greeting_phrase')} {name}"

    service.run()

Standard library only. `get_service(name)` finds another service of the project
(Orchest's `get_service(name)["internal_hostname"]`).
"""

from .discovery import ServiceNotFound, get_service, get_services
from .notifications import Severity, notify
from .platform import PlatformError
from .service import Service

__all__ = ["Service", "notify", "Severity", "get_service", "get_services",
           "ServiceNotFound", "PlatformError"]
__version__ = "0.1.0"
