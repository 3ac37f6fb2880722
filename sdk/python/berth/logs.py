"""Log lines the platform can store and show as they come.

berth keeps a service's stdout as its log, so records go to stdout, flushed per
line (a pipe would otherwise hold them back in a 8 KiB buffer until exit), in UTC
with milliseconds so that lines from several instances sort together:

    2026-12-01T17:29:02.123Z INFO __main__: Greeting someone with the name: Ada

A record spanning several lines (a traceback) keeps its first line in that shape
and indents the rest by two spaces, so each record still starts one line.
"""

import logging
import sys
import time


class UtcFormatter(logging.Formatter):
    """Formats `<UTC timestamp> <LEVEL> <logger>: <message>`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        text = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name}: " + \
            record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text.rstrip("\n").replace("\n", "\n  ")


def configure_logging() -> bool:
    """Sends the root logger to stdout at INFO, unless the program configured logging.

    Returns whether it configured anything. Calling it again is harmless.
    """
    root = logging.getLogger()
    if root.handlers:
        return False
    try:
        # print() from user code should reach the log as promptly as logging does.
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass  # stdout replaced by something that is not a TextIOWrapper
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(UtcFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return True
