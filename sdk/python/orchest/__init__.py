"""orchest: Orchest's Python SDK on berth, so step code written for Orchest runs unchanged.

    import orchest

    rate = orchest.get_step_param("rate", 0.1)
    data = orchest.get_inputs()["unnamed"]
    orchest.output(result, name="result")
    redis_host = orchest.get_service("redis")["internal_hostname"]

Each name here is a thin alias of the berth SDK (berth.steps, berth.discovery), laid
out as Orchest's modules are: orchest.parameters, orchest.transfer,
orchest.services and orchest.error. Standard library only, like berth.
"""

from . import error, parameters, services, transfer
from .parameters import (get_params, get_pipeline_param, get_step_param, update_params,
                         update_pipeline_param, update_step_param)
from .services import get_service, get_services
from .transfer import get_inputs, output, output_to_disk, output_to_memory

__all__ = ["get_params", "get_step_param", "get_pipeline_param", "update_params",
           "update_step_param", "update_pipeline_param", "get_inputs", "output",
           "output_to_disk", "output_to_memory", "get_service", "get_services",
           "parameters", "transfer", "services", "error"]
