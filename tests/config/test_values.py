"""Values flags parse into (config/values.py): refusals that say what is wrong in one line and
never repeat a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from transporter import cli
from transporter.config.values import ConfigError, at_least, parse_ws_url


@pytest.mark.parametrize(
    "url",
    ["wss://user:s3cret@cp.example:8443/ws", "ws://s3cret@cp/ws", "wss://:s3cret@cp/ws"],
)
def test_a_control_plane_url_with_a_user_or_password_is_refused_without_repeating_it(
    url: str,
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_ws_url(url)
    assert "no user nor password" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_control_plane_url_may_hold_an_at_sign_in_its_path() -> None:
    assert parse_ws_url("wss://cp.example:8443/ws?x=a@b") == "wss://cp.example:8443/ws?x=a@b"


def test_seconds_below_the_floor_are_refused() -> None:
    parse = at_least(1.0)
    assert parse("1") == 1.0
    assert parse("2.5") == 2.5
    for text in ("0.999", "1e-300"):
        with pytest.raises(ConfigError, match="below the least allowed, 1"):
            parse(text)
    for text in ("0", "-1", "nan", "soon"):
        with pytest.raises(ConfigError):
            parse(text)


def test_the_replica_look_has_a_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse(["cp", "--data-dir", str(tmp_path), "--replica-look", "1e-300"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "transporter cp: error: --replica-look: '1e-300' is below the least allowed, 1 (see --help)"
    ]


@pytest.mark.parametrize(
    ("flag", "given"),
    [
        *(("--heartbeat-interval", v) for v in ("0.5", "301", "inf", "nan", "-5", "soon")),
        *(("--heartbeat-budget", v) for v in ("0.5", "100001", "inf", "nan", "0", "many")),
    ],
)
def test_the_heartbeat_settings_have_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, given: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse(["cp", "--data-dir", str(tmp_path), flag, given])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert flag in error and repr(given) in error


def test_the_heartbeat_interval_reaches_the_control_plane(tmp_path: Path) -> None:
    settings = cli.parse(["cp", "--data-dir", str(tmp_path), "--heartbeat-interval", "5"])
    assert settings.heartbeat_interval == 5.0  # type: ignore[union-attr]
    default = cli.parse(["cp", "--data-dir", str(tmp_path)])
    assert default.heartbeat_interval == 5.0  # type: ignore[union-attr]
    assert default.heartbeat_budget == 650.0  # type: ignore[union-attr]
