"""Strict reading of request heads and chunked bodies, as berth's gateway reads them.

http.server is lenient where leniency lets requests be smuggled: it splits header lines at a
bare CR, unfolds obs-fold, and takes "Transfer-Encoding: chunked, identity" or
"Content-Length: 4, 4" on its own terms. The server checks each raw head line here first and
answers 400 to whatever RFC 9110 §5.5 and RFC 9112 refuse, so that a peer in front of it
cannot read a request one way and this server another.
"""

import re

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # every control but HTAB
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) "
                           rb"HTTP/1\.([01])")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[^\x00-\x08\x0a-\x1f\x7f]*)?")


def _without_line_end(line: bytes) -> bytes | None:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return None


def check_request_head(request_line: bytes, field_lines: list[bytes]) -> str | None:
    """Why the head is malformed, or None. field_lines as read, with their line ends."""
    line = _without_line_end(request_line)
    m = _REQUEST_LINE.fullmatch(line) if line is not None else None
    if m is None:
        return "a request line that is not 'METHOD target HTTP/1.1' with single spaces"
    http11 = m.group(3) == b"1"
    hosts = 0
    lengths: set[int] = set()
    encodings: list[bytes] = []
    for raw in field_lines:
        field = _without_line_end(raw)
        if field is None:
            return "a header line that does not end in CRLF"
        if field == b"":
            break
        if field[:1] in (b" ", b"\t"):
            return "a folded header line (obs-fold)"
        name, colon, value = field.partition(b":")
        if not colon:
            return "a header line without a colon"
        if not _TOKEN.fullmatch(name):
            return "an invalid header field name"
        value = value.strip(b" \t")
        if _CONTROL.search(value):
            return "a CR, LF, NUL or other control character in a header value"
        lower = name.lower()
        if lower == b"host":
            hosts += 1
        elif lower == b"content-length":
            if not value.isdigit():
                return f"invalid Content-Length {value.decode('latin-1')!r}: not one decimal number"
            lengths.add(int(value))
        elif lower == b"transfer-encoding":
            encodings.append(value)
    if len(lengths) > 1:
        return "two different Content-Length values"
    if encodings:
        if len(encodings) > 1:
            return "more than one Transfer-Encoding field"
        if encodings[0].lower() != b"chunked":
            return "a Transfer-Encoding other than chunked"
        if lengths:
            return "both Content-Length and Transfer-Encoding"
    if hosts > 1:
        return "more than one Host field"
    if hosts == 0 and http11:
        return "an HTTP/1.1 request without a Host field"
    return None


def chunk_size(line: bytes) -> int | None:
    """The size on a chunk-size line (with its CRLF), or None if the line is malformed."""
    if not line.endswith(b"\r\n"):
        return None
    m = _CHUNK_SIZE.fullmatch(line[:-2])
    return int(m.group(1), 16) if m else None


def is_trailer_line(line: bytes) -> bool:
    """A trailer field line (or the blank line ending them): CRLF-terminated, no controls."""
    return line.endswith(b"\r\n") and not _CONTROL.search(line[:-2])


class LineRecorder:
    """Stands in for a handler's rfile while http.server reads a head, keeping each line."""

    def __init__(self, rfile):
        self._rfile = rfile
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line = self._rfile.readline(limit)
        self.lines.append(line)
        return line

    def __getattr__(self, name):
        return getattr(self._rfile, name)
