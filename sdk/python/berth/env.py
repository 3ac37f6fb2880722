"""What the platform tells a service about itself, read from the environment.

berth starts every instance with HOST, PORT, CONTEXT_ROOT, BERTH_URL, BERTH_TOKEN,
BERTH_PROJECT, BERTH_SERVICE, BERTH_VERSION, BERTH_INSTANCE and, optionally,
BERTH_PARAMETERS. The values are read when they are needed rather than at import
time, so a program (or a test) may set them after importing berth.
"""

import os
import sys
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class PlatformEnv:
    """A snapshot of the platform's environment variables."""

    url: str  # BERTH_URL without a trailing slash; "" when not run by berth
    token: str
    project: str
    service: str
    version: str
    instance: str

    @staticmethod
    def read() -> "PlatformEnv":
        return PlatformEnv(
            url=os.environ.get("BERTH_URL", "").rstrip("/"),
            token=os.environ.get("BERTH_TOKEN", ""),
            project=os.environ.get("BERTH_PROJECT", ""),
            service=os.environ.get("BERTH_SERVICE", ""),
            version=os.environ.get("BERTH_VERSION", ""),
            instance=os.environ.get("BERTH_INSTANCE", ""),
        )


def context_root() -> str:
    """CONTEXT_ROOT normalized to "" or "/segment[/...]" (leading slash, no trailing one)."""
    root = os.environ.get("CONTEXT_ROOT", "").strip().strip("/")
    return "/" + root if root else ""


def bind_address(host: str | None, port: int | None) -> tuple[str, int]:
    """The address to listen on.

    HOST and PORT win over the arguments of run(): the platform chooses the address
    (each instance has its own loopback IP) and health-checks it there, so a port
    written into the code must not move a deployed service elsewhere. The arguments
    are the defaults for running the script by hand.
    """
    env_host = os.environ.get("HOST", "").strip()
    env_port = os.environ.get("PORT", "").strip()
    chosen_host = env_host or host or DEFAULT_HOST
    if env_port:
        try:
            chosen_port = int(env_port)
        except ValueError:
            raise ValueError(
                f"PORT={env_port!r} is not a port number; set PORT to an integer "
                "between 0 and 65535 or unset it") from None
    else:
        chosen_port = DEFAULT_PORT if port is None else port
    if not 0 <= chosen_port <= 65535:
        raise ValueError(f"port {chosen_port} is out of range; use 0..65535 (0 picks a free one)")
    return chosen_host, chosen_port


def program_name() -> str:
    """The running script's name without ".py", used when BERTH_SERVICE is not set."""
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    stem = base[:-3] if base.endswith(".py") else base
    return stem or "service"
