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

Code that runs as a pipeline step uses `get_step_param`, `get_params`,
`get_pipeline_param`, `output` and `get_inputs` (berth.steps; the `orchest` package
beside this one offers them under Orchest's names).
"""

from .discovery import ServiceNotFound, get_service, get_services
from .notifications import Severity, notify
from .platform import PlatformError
from .service import Service
from .steps import (InputNameCollisionError, NotAStepError, StepError, get_inputs,  # noqa: F401
                    get_params, get_pipeline_param, get_step_param, output)

__all__ = ["Service", "notify", "Severity", "get_service", "get_services",
           "ServiceNotFound", "PlatformError"]
# The step functions are importable as berth.get_step_param etc. but are left out of
# __all__, which tests/test_package.py pins to the service API.
__version__ = "0.1.0"
