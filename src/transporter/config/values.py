"""The values flags parse into: addresses, URLs, ids, tokens, numbers and switches.

Every parser raises :class:`ConfigError` with a message that names what was wrong; the CLI turns
that into a one-line error and exit code 2.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

import attrs

from transporter.protocol import ids


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message says which and why."""


@attrs.frozen
class Address:
    """A TCP address to listen on or dial. Port 0 asks the OS for a free port (tests use it)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port_text = text.strip().rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError(f"{text!r} is not HOST:PORT")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} in {text!r} is outside 0-65535")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host or "0.0.0.0", port)  # noqa: S104 - an empty host means every interface

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this host can reach it (``localhost``, 127.0.0.0/8, ``::1``)."""
        return host_is_loopback(self.host)


def _checked[T](check: Callable[[str], T], text: str) -> T:
    try:
        return check(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_label(text: str) -> tuple[str, str]:
    """``K=V`` with Kubernetes label syntax, so labels can later select agents like kubectl -l."""
    return _checked(ids.check_label, text)


def parse_namespace(text: str) -> str:
    """A Kubernetes namespace name (a DNS label)."""
    return _checked(ids.check_namespace, text)


def parse_agent_id(text: str) -> str:
    """Agent ids are DNS labels (lower case, digits, '-' and '.'), at most 63 characters."""
    return _checked(ids.check_agent_id, text)


def parse_ws_url(text: str) -> str:
    """A control plane's agent channel. A user or password in it is refused without
    repeating it: the channel authenticates with the agent's certificate, and the URL is
    logged (each dial, each failover), so a secret there would land in the logs."""
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ConfigError(
            "a control-plane URL holds no user nor password (the agent authenticates with its"
            " certificate, and the URL is logged): remove the part before '@'"
        )
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{text!r} is not a ws:// or wss:// URL with a host")
    return text


def parse_http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{text!r} is not an http:// or https:// URL with a host")
    return text.rstrip("/")


def parse_token(text: str) -> str:
    """An API token as given: whitespace around it (the newline or carriage return a file or a
    copy brings along) is dropped; a character no token holds is refused, saying which and
    where, never quoting the token."""
    token = text.strip()
    if not token:
        raise ConfigError("is empty")
    for position, char in enumerate(token, start=1):
        if not (char.isascii() and (char.isalnum() or char in "_-")):
            raise ConfigError(
                f"is not a token: it holds {_character(char)} at position {position}; a token"
                " is tpt_<id>_<secret> (letters, digits, '_' and '-')"
            )
    if not token.startswith("tpt_"):
        raise ConfigError("is not a transporter token: tokens are tpt_<id>_<secret>")
    return token


def _character(char: str) -> str:
    names = {"\r": "a carriage return", "\n": "a line feed", "\t": "a tab", " ": "a space"}
    return names.get(char, f"the character U+{ord(char):04X}")


def host_is_loopback(host: str | None) -> bool:
    """Whether only this host can be reached at ``host`` (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token_transport(url: str, token: str | None) -> None:
    """A token is sent in cleartext only to this host: ``http://`` elsewhere is refused."""
    parts = urlsplit(url)
    if token is not None and parts.scheme == "http" and not host_is_loopback(parts.hostname):
        raise ConfigError(
            f"{url} is plain HTTP and not this host: the token would cross the network"
            " readable; use https:// (the control plane serves HTTPS by default)"
        )


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{text!r} must be greater than 0")
    return value


def at_least(floor: float) -> Callable[[str], float]:
    """A parser of seconds not below ``floor``: a smaller value (``1e-300``) would turn a
    periodic look into a busy loop."""

    def parse(text: str) -> float:
        value = parse_positive_float(text)
        if not value >= floor:
            raise ConfigError(f"{text!r} is below the least allowed, {floor:g}")
        return value

    return parse


def within(least: float, most: float) -> Callable[[str], float]:
    """A parser of seconds from ``least`` to ``most``."""

    def parse(text: str) -> float:
        value = parse_positive_float(text)
        if not least <= value <= most:
            raise ConfigError(f"{text!r} is not from {least:g} to {most:g}")
        return value

    return parse


def parse_positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")
