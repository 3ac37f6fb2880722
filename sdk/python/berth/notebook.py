"""Runs a notebook step: `python3 -m berth.notebook IN.ipynb OUT.ipynb`.

Orchest pipelines are mostly notebooks, so the berth daemon starts a notebook step
as this module. It executes IN top to bottom in a fresh `python3` kernel (Jupyter's
nbclient and ipykernel), in the current working directory, with this process's
environment: the kernel inherits ORCHEST_PIPELINE_PATH and the rest of the step's
variables, so `import orchest` works in the notebook as in a script step.

While it runs, each cell's stdout and stderr are copied to this process's stdout
and stderr as they arrive, so the step's log shows them live. The executed
notebook, with its outputs, is always written to OUT (atomically: a temporary
file then a rename), also when a cell fails or the kernel dies, so the failing
cell can be looked at. Outputs saved in IN are dropped first: OUT shows this run only.

Exit status: 0 when every cell ran; 1 when a cell raised (its traceback is printed
to stderr), the kernel died, a cell timed out or SIGTERM/SIGINT stopped the run
(the kernel is shut down, the cells run so far are written); 2 when the notebook
cannot be read or the run cannot start (bad arguments, nbclient missing, bad
timeout), and then OUT is not written.

No cell timeout by default: pipeline steps may run for hours. Set
BERTH_NOTEBOOK_CELL_TIMEOUT (seconds) for one.

nbclient is imported only here, when a notebook runs; `import berth` never needs it.
"""

import asyncio
import logging
import math
import os
import re
import sys
import warnings

from .steps import write_atomically

KERNEL = "python3"
TIMEOUT_VAR = "BERTH_NOTEBOOK_CELL_TIMEOUT"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

EXIT_OK, EXIT_CELL_ERROR, EXIT_UNREADABLE = 0, 1, 2


class _Usage(Exception):
    """The run cannot start; the message says why (exit 2)."""


def _say(message: str) -> None:
    print(f"berth.notebook: {message}", file=sys.stderr, flush=True)


def _cell_timeout() -> int | None:
    """BERTH_NOTEBOOK_CELL_TIMEOUT in whole seconds (nbclient's unit), rounded up."""
    raw = os.environ.get(TIMEOUT_VAR, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise _Usage(f"{TIMEOUT_VAR}={raw!r} is not a positive number of seconds; unset it "
                     "for no cell timeout")
    return math.ceil(seconds)


def _read(path: str):
    """The notebook at `path` as nbformat v4; _Usage when it cannot be read or is invalid.

    nbformat.read() only logs a notebook that fails validation; here it is refused,
    before a kernel starts. Cell ids that nbformat >= 4.5 wants are added if missing.
    """
    import nbformat
    from nbformat import reader
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise _Usage(f"cannot read notebook {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise _Usage(f"cannot read notebook {path}: it is not UTF-8 text ({e})") from None
    try:
        nb = nbformat.convert(reader.reads(text), 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MissingIDFieldWarning: the ids are added
            nbformat.validate(nb)
    except nbformat.ValidationError as e:
        raise _Usage(f"cannot read notebook {path}: it is not a valid notebook "
                     f"({e.message})") from None
    except Exception as e:  # nbformat's own errors: not JSON, no nbformat version, ...
        raise _Usage(f"cannot read notebook {path}: it is not a valid notebook "
                     f"({type(e).__name__}: {e})") from None
    return nb


def _write(nb, path: str) -> None:
    """Writes `nb` to `path` through a temporary file in the same directory."""
    import nbformat
    write_atomically(path, lambda f: nbformat.write(nb, f))


def _client_class():
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbclient.util import ensure_async

    class StreamingClient(NotebookClient):
        """A NotebookClient that copies stream outputs to our stdout/stderr live, and
        turns SIGTERM/SIGINT into a clean stop: the run is cancelled, the kernel shut
        down, and `stopped` says so (nbclient alone shuts the kernel down under the
        running cell, which then fails with whatever error that causes)."""

        running_cell: int | None = None  # index of the cell being executed
        failed_cell: int | None = None  # index of the cell whose error stopped the run
        stopped = False  # a signal stopped the run
        stopped_in_cell: int | None = None  # ... while this cell ran
        _main_task: "asyncio.Task | None" = None

        async def async_start_new_kernel(self, **kwargs):
            self._main_task = asyncio.current_task()
            try:
                return await super().async_start_new_kernel(**kwargs)
            except asyncio.CancelledError:
                await self._kill_kernel()
                raise

        async def async_start_new_kernel_client(self):
            try:
                return await super().async_start_new_kernel_client()
            except asyncio.CancelledError:
                await self._kill_kernel()
                raise

        async def _kill_kernel(self):
            """Stopped while the kernel starts: nbclient's cleanup does not run yet."""
            if self.kc is not None:
                self.kc.stop_channels()
            if self.km is not None and self.km.has_kernel:
                await ensure_async(self.km.shutdown_kernel(now=True))

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            self._main_task = asyncio.current_task()
            self.running_cell = cell_index
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            except CellExecutionError:
                self.failed_cell = cell_index
                raise
            finally:
                self.running_cell = None

        async def _async_cleanup_kernel(self):
            # nbclient's SIGTERM/SIGINT handler calls this from a task of its own, which
            # races with the running cell and ends in arbitrary errors. Cancel the run
            # instead: its own cleanup then shuts the kernel down, and we know why.
            task = self._main_task
            if task is not None and not task.done() and asyncio.current_task() is not task:
                if not self.stopped:
                    self.stopped, self.stopped_in_cell = True, self.running_cell
                self.shutdown_kernel = "immediate"
                task.cancel()
                return
            await super()._async_cleanup_kernel()

        def process_message(self, msg, cell, cell_index):
            if msg.get("msg_type") == "stream":
                content = msg.get("content", {})
                target = sys.stderr if content.get("name") == "stderr" else sys.stdout
                target.write(content.get("text", ""))
                target.flush()
            return super().process_message(msg, cell, cell_index)

    return StreamingClient


def _error_output(cell):
    """The error output of `cell`, or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def _clear_outputs(nb) -> None:
    """Drops the outputs saved in IN, so OUT shows only what this run produced (cells
    after a failing one would otherwise keep an earlier session's outputs)."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def run(in_path: str, out_path: str) -> int:
    """Executes `in_path`, writes the result to `out_path`; returns the exit status."""
    try:
        timeout = _cell_timeout()
        try:
            from nbclient.exceptions import CellExecutionError, CellTimeoutError, \
                DeadKernelError
        except ImportError as e:
            raise _Usage(f"cannot run notebooks: nbclient is not installed ({e}); install "
                         "Debian's python3-nbclient and python3-ipykernel") from None
        nb = _read(in_path)
    except _Usage as e:
        _say(str(e))
        return EXIT_UNREADABLE

    _clear_outputs(nb)
    # ipykernel's debugger (pydevd) otherwise warns about frozen modules on every start
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    client = _client_class()(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=False,
                             resources={"metadata": {"path": os.getcwd()}})
    status = EXIT_CELL_ERROR
    try:
        client.execute(cwd=os.getcwd())  # the kernel inherits os.environ
        status = EXIT_OK
    except CellExecutionError as e:
        index = client.failed_cell
        out = _error_output(client.nb.cells[index]) if index is not None else None
        if out is not None:
            tb = "\n".join(out.get("traceback") or []) or f"{out.get('ename')}: " \
                                                           f"{out.get('evalue')}"
            _say(f"cell {index + 1} of {len(client.nb.cells)} raised {out.get('ename')}: "
                 f"{out.get('evalue')}")
            print(_ANSI.sub("", tb), file=sys.stderr, flush=True)
        else:
            _say("a cell raised:")
            print(_ANSI.sub("", str(e)), file=sys.stderr, flush=True)
    except CellTimeoutError as e:
        _say(f"a cell ran longer than {TIMEOUT_VAR}={timeout} seconds: {e}")
    except (Exception, asyncio.CancelledError) as e:  # still write what we have
        if client.stopped:
            where = ("while the kernel was starting" if client.stopped_in_cell is None else
                     f"while cell {client.stopped_in_cell + 1} of {len(client.nb.cells)} "
                     "was running")
            _say(f"stopped by a signal (SIGTERM or SIGINT) {where}; the kernel was shut down")
            # nbclient leaves its kernel-alive poller pending; asyncio would log it at exit
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        elif isinstance(e, DeadKernelError):
            _say(f"the kernel died: {e}")
        else:
            _say(f"the notebook could not be run: {type(e).__name__}: {e}")
    finally:
        try:
            _write(client.nb, out_path)
        except Exception as e:
            _say(f"cannot write the executed notebook to {out_path}: {e}")
            status = status or EXIT_CELL_ERROR
    return status


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0].startswith("-"):
        _say("usage: python3 -m berth.notebook IN.ipynb OUT.ipynb")
        return EXIT_UNREADABLE
    return run(args[0], args[1])


if __name__ == "__main__":
    sys.exit(main())
