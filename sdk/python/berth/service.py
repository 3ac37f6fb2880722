"""Service: the one object a berth service program creates.

    service = Service()
    service.add_parameter("greeting_phrase", "Hello")

    @service.entrypoint
    def hello(name: str) -> str: ...

    service.run()

It collects entrypoints and parameters while the module loads, then run() serves
them over HTTP until the platform (or Ctrl-C) stops the process.
"""

import logging
import os
import signal
import threading
from importlib import resources
from typing import Any, Callable

from . import notifications
from .app import App
from .entrypoints import Entrypoint
from .env import PlatformEnv, bind_address, context_root, program_name
from .logs import configure_logging
from .parameters import Parameters, parse_overrides
from .server import HttpServer

log = logging.getLogger("berth")

# The platform sends SIGKILL 10 s after SIGTERM: drain requests, then notifications, within it.
STOP_GRACE_S = 7.0
NOTIFY_FLUSH_S = 2.0


class Service:
    """Entrypoints, parameters and the HTTP server of one service.

    Parameter methods are thread-safe. Entrypoints must be declared before run().
    """

    def __init__(self, name: str | None = None):
        """`name` titles the API docs; by default BERTH_SERVICE, else the script's name."""
        configure_logging()
        self._name = name
        self._parameters = Parameters(parse_overrides(os.environ.get("BERTH_PARAMETERS")))
        self._routes: dict[str, dict[str, Entrypoint]] = {}
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._stop_lock = threading.Lock()  # a second stop() waits for the first to finish

    # -- parameters ---------------------------------------------------------------

    def add_parameter(self, name: str, default: Any) -> None:
        """Defines a runtime parameter; its type is the type of `default`.

        A value stored on the platform (BERTH_PARAMETERS) replaces the default when
        its type fits. Raises TypeError for an unsupported default and ValueError
        for a bad or duplicate name.
        """
        self._parameters.add(name, default)

    def get_parameter(self, name: str) -> Any:
        """The current value (a copy); KeyError if the parameter was never added."""
        return self._parameters.get(name)

    def set_parameter(self, name: str, value: Any) -> None:
        """Changes a parameter; TypeError if `value` is not of its type, KeyError if unknown."""
        self._parameters.set(name, value)

    # -- entrypoints --------------------------------------------------------------

    def entrypoint(self, func: Callable | None = None, *, method: str = "POST",
                   path: str | None = None):
        """Exposes a function at `<context root>/<path>` (default: the function's name).

        Use bare (`@service.entrypoint`) or with options
        (`@service.entrypoint(method="GET", path="custom")`). The function is
        returned unchanged. Type hints of the arguments are enforced on requests;
        an unsupported hint or a taken path fails here, at start-up.
        """
        def register(f: Callable) -> Callable:
            ep = Entrypoint(f, method=method, path=path)
            by_method = self._routes.setdefault(ep.path, {})
            if ep.method in by_method:
                raise ValueError(f"entrypoint '{ep.name}': {ep.method} {ep.path} is already "
                                 f"served by '{by_method[ep.method].name}'; pass path=... to "
                                 "choose another path")
            by_method[ep.method] = ep
            return f

        if func is not None:
            return register(func)
        return register

    # -- serving ------------------------------------------------------------------

    def run(self, host: str | None = None, port: int | None = None) -> None:
        """Serves until SIGTERM or SIGINT, then stops cleanly and returns.

        The address is HOST and PORT from the environment (set by the platform), else
        the arguments, else 127.0.0.1:8080. Called from a thread other than the main
        one, it serves until stop() is called. If it cannot listen (address taken, bad
        PORT), it logs why and exits with status 1: there is nothing to serve.
        """
        # The handlers go in before the server answers: the platform may send SIGTERM as
        # soon as the first health check passes, and the default action would kill us
        # without flushing notifications.
        self._stop_requested.clear()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            try:
                self._start(host, port)
            except (OSError, ValueError) as e:
                log.error("cannot start: %s", e)
                raise SystemExit(1) from None
            self._stop_requested.wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Starts serving on a background thread and returns the bound (host, port).

        For tests and embedding; run() is this plus waiting for a signal. Port 0
        picks a free port.
        """
        self._stop_requested.clear()
        return self._start(host, port)

    def _start(self, host: str | None, port: int | None) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError("the service is already running; call stop() first")
        address = bind_address(host, port)
        env = PlatformEnv.read()
        root = context_root()
        app = App(self._routes, self._parameters, root,
                  title=self._name or env.service or program_name(),
                  version=env.version or "dev", docs_html=_docs_html)
        try:
            self._server = HttpServer(address, app)
        except OSError as e:
            raise OSError(e.errno, f"cannot listen on {address[0]}:{address[1]}: {e.strerror}; "
                                   "set HOST/PORT (or pass run(host=, port=)) to a free "
                                   "address") from None
        bound = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="berth-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        for name in self._parameters.unused_overrides():
            log.warning("BERTH_PARAMETERS sets '%s', which this service does not define with "
                        "add_parameter; ignoring it", name)
        eps = ", ".join(f"{m} {root}{p}" for p, by in sorted(self._routes.items())
                        for m in sorted(by)) or "none"
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        log.info("serving %s on http://%s:%d%s/ (entrypoints: %s; docs: %s/docs)",
                 app.title, shown, bound[1], root, eps, root)
        return bound

    @property
    def address(self) -> tuple[str, int] | None:
        """The (host, port) being served, or None when not running."""
        server = self._server
        return None if server is None else server.server_address[:2]

    def stop(self) -> None:
        """Stops serving: waits for requests in progress, then for notifications."""
        self._stop_requested.set()
        with self._stop_lock:
            server, self._server = self._server, None
            if server is None:
                return
            if not server.stop(STOP_GRACE_S):
                log.warning("stopped while requests were still running after %.0f s",
                            STOP_GRACE_S)
            if self._thread is not None:
                self._thread.join()
            if not notifications.flush(NOTIFY_FLUSH_S):
                log.warning("some notifications were not delivered before stopping")
            log.info("stopped")

    def _on_signal(self, signum, frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop_requested.set()


def _docs_html() -> bytes:
    return resources.files("berth").joinpath("docs.html").read_bytes()
