"""orchest.transfer: passing data from a step to the steps after it.

`output(data, name)` stores the data in the step's output directory; the children's
`get_inputs()` returns every named output by name and the unnamed ones, in the
order of the incoming connections, under "unnamed". Orchest chose between memory
(Arrow's plasma store) and disk; berth always writes to disk, so output_to_disk and
output_to_memory are the same as output and their extra arguments change nothing.
"""

from typing import Any

from berth.steps import get_inputs
from berth.steps import output as _output

__all__ = ["output", "output_to_disk", "output_to_memory", "get_inputs"]


def output(data: Any, name: str | None = None) -> None:
    """Outputs `data` under `name` (None: unnamed) for the next steps; see berth.output."""
    _output(data, name)


def output_to_disk(data: Any, name: str | None = None, serialization: Any = None) -> None:
    """The same as output(). `serialization` must be None: berth picks JSON or pickle."""
    if serialization is not None:
        raise ValueError("output_to_disk(serialization=...) is not supported on berth: pass the "
                         "data itself, berth stores it as JSON when it can and pickles it "
                         "otherwise")
    _output(data, name)


def output_to_memory(data: Any, name: str | None = None, disk_fallback: bool = True) -> None:
    """The same as output(): berth keeps outputs on disk, so `disk_fallback` is moot."""
    _output(data, name)
