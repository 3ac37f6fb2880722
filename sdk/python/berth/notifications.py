"""notify(): tell the people running a service that something needs attention.

The platform shows notifications on its dashboard and in `berth notifications ls`,
and mails them to `emails`. Sending must never slow down or break the request
that raised it, so notify() only logs the notification and puts it on a small
queue; one background thread posts it to `$BERTH_URL/api/v1/notifications`,
retrying twice, and logs a warning if it still cannot. When the queue is full
(the platform is down and a loop keeps notifying) new notifications are dropped
with a warning rather than piling up in memory.
"""

import atexit
import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass

from . import platform
from .env import PlatformEnv
from .platform import PlatformError

log = logging.getLogger("berth.notify")

QUEUE_SIZE = 64
MAX_TIMER_S = 7 * 24 * 3600  # the platform's limit


class Severity(enum.Enum):
    """How urgent a notification is; the platform sorts and colours by it."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


_LOG_LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING,
               Severity.CRITICAL: logging.CRITICAL}


@dataclass
class _Pending:
    env: PlatformEnv  # captured when notify() was called
    payload: dict


class Notifier:
    """The queue and the thread that deliver notifications; one per process."""

    def __init__(self, queue_size: int = QUEUE_SIZE, backoff_s: tuple = (0.5, 1.0)):
        self.backoff_s = backoff_s  # waits before the 2nd and 3rd attempt
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._flush_at_exit = False

    def submit(self, env: PlatformEnv, payload: dict) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(_Pending(env, payload))
        except queue.Full:
            log.warning("dropping notification %r: %d notifications are already waiting to be "
                        "sent to %s", payload["message"], self._queue.maxsize, env.url)

    def flush(self, timeout_s: float) -> bool:
        """Waits until every queued notification was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                # A daemon thread: a program that ends without run() is not held up by it.
                self._thread = threading.Thread(target=self._work, name="berth-notify",
                                                daemon=True)
                self._thread.start()
                if not self._flush_at_exit:
                    # ...but a script that notifies and ends still gets its notifications out.
                    atexit.register(self.flush, 5.0)
                    self._flush_at_exit = True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._deliver(item)
            except Exception:  # never let one bad notification stop the thread
                log.exception("unexpected error while sending a notification")
            finally:
                self._queue.task_done()

    def _deliver(self, item: _Pending) -> None:
        waits = (0.0,) + tuple(self.backoff_s)
        for attempt, wait in enumerate(waits, start=1):
            if wait:
                time.sleep(wait)
            try:
                platform.call("POST", "/api/v1/notifications", item.payload, env=item.env,
                              what="send a notification")
                return
            except PlatformError as e:
                retryable = e.status is None or e.status >= 500 or e.status == 429
                if not retryable or attempt == len(waits):
                    log.warning("notification %r was not delivered after %d attempt%s: %s",
                                item.payload["message"], attempt, "" if attempt == 1 else "s", e)
                    return


_notifier = Notifier()


def notify(msg: str, severity: Severity = Severity.INFO, emails=None, timer: int = 0) -> None:
    """Sends a notification to the platform, in the background; returns at once.

    msg:      what happened, in a sentence.
    severity: Severity.INFO, WARNING or CRITICAL (or its name as a string).
    emails:   addresses to mail it to (a list, or one string); None for none.
    timer:    whole seconds during which the platform suppresses repeats of the
              same notification (0: every call is shown), at most a week.

    Delivery problems are logged, never raised. Invalid arguments raise ValueError
    or TypeError, because they are mistakes in the code that a first run reveals.
    Without BERTH_URL (running outside berth) the notification is only logged.
    """
    severity = _severity(severity)
    if emails is None:
        emails = []
    elif isinstance(emails, str):
        emails = [emails]
    else:
        emails = list(emails)
        if not all(isinstance(e, str) for e in emails):
            raise TypeError(f"notify(emails=...) takes a list of address strings, got {emails!r}")
    timer = _timer(timer)
    message = str(msg)
    log.log(_LOG_LEVELS[severity], "notification (%s): %s", severity.value, message)
    env = PlatformEnv.read()
    if not env.url:
        return
    payload = {"message": message, "severity": severity.value, "service": env.service,
               "version": env.version, "instance": env.instance, "emails": emails,
               "timer": timer}
    _notifier.submit(env, payload)


def flush(timeout_s: float = 5.0) -> bool:
    """Waits for queued notifications to be delivered (run() does this before exiting)."""
    return _notifier.flush(timeout_s)


def _timer(value) -> int:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value <= MAX_TIMER_S:
        raise ValueError(f"notify(timer=...) is a whole number of seconds between 0 and "
                         f"{MAX_TIMER_S} (a week), got {value!r}")
    return int(value)


def _severity(value) -> Severity:
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value.upper() in Severity.__members__:
        return Severity[value.upper()]
    raise ValueError(f"notify(severity=...) must be Severity.INFO, Severity.WARNING or "
                     f"Severity.CRITICAL, got {value!r}")
