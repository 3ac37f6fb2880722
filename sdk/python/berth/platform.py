"""A minimal client of the berth platform's REST API (`$BERTH_URL/api/v1/...`).

Plain urllib, so the SDK needs nothing beyond the standard library. The platform
answers errors as {"error": {"code": "...", "message": "..."}}; PlatformError
carries that message so users see the platform's own explanation.
"""

import json
import urllib.error
import urllib.request
from typing import Any

from .env import PlatformEnv

TIMEOUT_S = 10.0


class PlatformError(RuntimeError):
    """A call to the berth platform failed, or the platform is not configured.

    `status` is the HTTP status (None when no answer came), `code` the platform's
    error code when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def not_configured(what: str) -> PlatformError:
    return PlatformError(
        f"cannot {what}: BERTH_URL is not set. berth sets BERTH_URL and BERTH_TOKEN for the "
        "services it runs; elsewhere, set BERTH_URL (e.g. http://127.0.0.1:8080) and "
        "BERTH_TOKEN (a project token) in the environment")


def call(method: str, path: str, body: Any = None, env: PlatformEnv | None = None,
         what: str = "call the berth platform", timeout: float = TIMEOUT_S) -> Any:
    """Sends one request and returns the decoded JSON answer (None for an empty body).

    Raises PlatformError for a missing BERTH_URL, an unreachable platform, a non-2xx
    answer (with the platform's message) or an answer that is not JSON.
    """
    env = env or PlatformEnv.read()
    if not env.url:
        raise not_configured(what)
    url = env.url + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if env.token:
        request.add_header("Authorization", f"Bearer {env.token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as e:
        code, message = _error_of(e)
        raise PlatformError(f"cannot {what}: {method} {url} answered {e.code}: {message}",
                            status=e.code, code=code) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise PlatformError(f"cannot {what}: the berth platform at {env.url} is unreachable "
                            f"({reason}); check BERTH_URL") from None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise PlatformError(f"cannot {what}: {method} {url} answered something that is not "
                            f"JSON: {raw[:80]!r}") from None


def _error_of(e: urllib.error.HTTPError) -> tuple[str | None, str]:
    """The platform's (code, message) from an error answer, or the HTTP reason."""
    try:
        raw = e.read()
    except OSError:
        raw = b""
    try:
        err = json.loads(raw)["error"]
        return err.get("code"), str(err.get("message") or e.reason)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = raw.decode("utf-8", "replace").strip()
        return None, text[:200] or str(e.reason)
