"""What every log line goes through, whoever writes it: no secret in it, no line forged by it.

- :class:`Guard` is a filter on the one handler every process logs through, so it sees the
  records of every library too (hpack logs request headers at debug, the Kubernetes client
  response bodies, URLs carry Redis passwords). It removes bearer tokens, our API tokens,
  JSON Web Tokens (Kubernetes service-account tokens), Basic credentials, passwords in URLs
  and PEM private keys, from the message and from a traceback.
- Every string a record carries as an argument is escaped (:func:`escape`): control
  characters, line and paragraph separators and bidirectional controls become visible escapes,
  so a client-supplied value (a request path with ``%0A``, a header) can never start a line of
  its own or hide text; so is every whole message, since an argument that is not a string
  (an exception) carries client text through its ``str()``.
- Libraries that log what they carry (headers, bodies, commands) are kept at WARNING even with
  ``--debug`` (:data:`QUIET`).
- Two formats (``--log-format``): ``text`` for people, one line each, and ``json`` for
  collectors, one object a line. Both carry the time in ISO 8601 with its zone (UTC, ``Z``) and
  the :data:`FIELDS` a record names (``extra=about(event_id=...)``): ``event_id=...`` at the
  end of a text line, keys of their own in JSON. The guard runs before either.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Final, Literal

REDACTED: Final = "<redacted>"
QUIET: Final = (
    "hpack",
    "h2",
    "h11",
    "hypercorn.access",
    "coredis",
    "quart.serving",
    "trio-websocket",
    "trio_websocket",
    "wsproto",
    "asyncio",
)
"""Loggers that write what passes through them (headers, bodies, commands): WARNING at most."""

_SECRETS: Final = (
    # Our API tokens: the id stays (it names the token), the secret goes.
    (re.compile(r"\b(tpt_[0-9a-f]{6,32}_)[A-Za-z0-9_\-]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{12,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(basic\s+)[A-Za-z0-9+/=]{4,}"), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), REDACTED),
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/\s@'\"]*:)[^@\s/'\"]+@"), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        f"-----{REDACTED} PRIVATE KEY-----",
    ),
    (
        re.compile(r"(?i)([\"']?(?:password|passwd)[\"']?\s*[:=]\s*[\"']?)[^\s'\",}]+"),
        rf"\1{REDACTED}",
    ),
)
_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""What :func:`escape` makes visible: controls, line breaks, bidirectional controls, and lone
surrogates (undecodable bytes of a request, which no UTF-8 writer or strict JSON reader takes)."""


def scrub(text: str) -> str:
    """``text`` without the secrets :class:`Guard` knows the shapes of."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every character that could break or disguise a log line made visible."""
    return _UNSAFE.sub(_escaped, text)


class Guard(logging.Filter):
    """Escapes a record's string arguments and scrubs secrets from what it will print."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                setattr(record, key, scrub(escape(str(value))))
        if isinstance(record.args, tuple):
            record.args = tuple(_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _arg(value) for key, value in record.args.items()}
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a library's bad format string: show it as it is
            message = f"{record.msg!r} % {record.args!r}"
        # Every message, ours too: an argument that is not a string (an exception, a path)
        # carries client text through its str(); escaping is idempotent on escaped text.
        message = escape(message)
        record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def _arg(value: object) -> object:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, bytes | bytearray):
        return escape(repr(bytes(value)))
    return value


def quiet_libraries() -> None:
    """Keep :data:`QUIET` at WARNING, whatever the root level."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


type LogFormat = Literal["text", "json"]

FIELDS: Final = ("event_id", "agent_id")
"""What a record may name besides its message (``extra=about(...)``): the event or agent it is
about, so that a collector can select every line of one."""


def about(*, event_id: str | None = None, agent_id: str | None = None) -> dict[str, str]:
    """The ``extra=`` of a log call about an event, an agent, or both."""
    fields = {"event_id": event_id, "agent_id": agent_id}
    return {key: value for key, value in fields.items() if value is not None}


class Tagged(logging.Filter):
    """Names ``fields`` in every record that does not name them itself (the agent process is
    about one agent: every line of it carries its ``agent_id``)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def iso_time(at: float) -> str:
    """``at`` in ISO 8601, UTC, to the millisecond: ``2026-12-06T07:45:01.123Z``."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE event_id=... agent_id=...``, a traceback below it, indented."""

    def format(self, record: logging.LogRecord) -> str:
        fields = "".join(
            f" {key}={getattr(record, key)}"
            for key in FIELDS
            if getattr(record, key, None) is not None
        )
        line = f"{iso_time(record.created)} {record.levelname:<5} {record.name}: "
        line += record.getMessage() + fields
        if record.exc_text:
            line += _below(record.exc_text)
        if record.stack_info:
            line += _below(record.stack_info)
        return line


def _below(text: str) -> str:
    """A traceback under its line, each of its lines indented and escaped: an exception's
    message (which may carry client text) cannot start a line that looks like a log line."""
    return "".join(f"\n  {escape(part)}" for part in text.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``msg``, the :data:`FIELDS` the
    record names, and ``exc`` (a traceback) or ``stack`` when it has one. Non-ASCII is escaped,
    so no character can end the line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, str] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = str(value)
        if record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=True)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()
