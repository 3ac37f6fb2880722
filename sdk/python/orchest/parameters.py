"""orchest.parameters: the parameters of the current step and of its pipeline.

They come from the run's frozen pipeline definition (ORCHEST_PIPELINE_PATH), as in
Orchest. Unlike Orchest, a step cannot change them: berth freezes a run's parameters
when it starts, so the update functions raise berth.steps.StepError with a message
that says so, rather than silently writing a file no one reads.
"""

from typing import Any

from berth.steps import get_params, get_pipeline_param, get_step_param
from berth.steps import update_params as _frozen

__all__ = ["get_params", "get_step_param", "get_pipeline_param", "update_params",
           "update_step_param", "update_pipeline_param"]


def update_params(step_params: dict | None = None, pipeline_params: dict | None = None) -> None:
    """Not supported on berth (a run's parameters are frozen); raises StepError."""
    _frozen(step_params, pipeline_params)


def update_step_param(name: str, value: Any) -> None:
    """Not supported on berth (a run's parameters are frozen); raises StepError."""
    _frozen(step_params={name: value})


def update_pipeline_param(name: str, value: Any) -> None:
    """Not supported on berth (a run's parameters are frozen); raises StepError."""
    _frozen(pipeline_params={name: value})
