"""orchest.error: Orchest's exception names, as the berth exceptions raised in their place.

Several Orchest names map to one berth class, so an `except` written for Orchest
still catches what berth raises for the same failure.
"""

from berth.discovery import ServiceNotFound
from berth.steps import InputNameCollisionError, NotAStepError, StepError

Error = StepError
PipelineDefinitionNotFoundError = StepError
StepUUIDResolveError = StepError
OutputNotFoundError = StepError
DeserializationError = StepError
DataInvalidNameError = ValueError  # output() raises ValueError for an invalid name
SerializationError = TypeError  # ... and TypeError for data it cannot store

__all__ = ["Error", "PipelineDefinitionNotFoundError", "StepUUIDResolveError",
           "OutputNotFoundError", "DeserializationError", "DataInvalidNameError",
           "SerializationError", "InputNameCollisionError", "NotAStepError",
           "ServiceNotFound"]
