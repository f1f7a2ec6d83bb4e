"""Server configuration: one frozen `Config` built from defaults, a TOML file and flags.

Owns: every tunable with its default and the reason for it. Later issues add options here
(events, TLS); the TOML keys use Cyrus's option names where one exists.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from imapd.protocol.connection import Limits


class ConfigError(Exception):
    """Invalid configuration; the message names the option."""


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("var")
    listen: tuple[str, int] = ("127.0.0.1", 1143)
    lmtp: str | None = None
    notify_socket: str | None = None
    servername: str = "localhost"
    limits: Limits = field(default_factory=Limits)
    #: RFC 3501 §5.4: the autologout timer is at least 30 minutes once authenticated.
    idle_timeout: float = 30 * 60.0
    #: Before authentication a client has little reason to linger (Dovecot: 3 minutes).
    login_timeout: float = 60.0
    #: Delay before answering a failed LOGIN/AUTHENTICATE (slows password guessing).
    auth_failure_delay: float = 2.0
    #: RFC 3501 §6.2.3: LOGIN over cleartext. None: allowed only on loopback listeners.
    allow_plaintext_login: bool | None = None
    #: "FULL": an OK survives power loss; "NORMAL": survives kill -9 only (SQLite WAL docs).
    sqlite_synchronous: str = "FULL"
    #: scrypt cost for new password hashes (2**14 is hashlib's documented interactive cost).
    scrypt_n: int = 2**14
    #: Seconds in-flight commands get to finish on SIGTERM before connections are cut.
    shutdown_timeout: float = 10.0
    #: Unread changes a session may queue before it is disconnected (selected mailbox).
    max_pending_changes: int = 10_000

    @property
    def db_path(self) -> Path:
        return self.data_dir / "imapd.sqlite3"


def parse_hostport(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


_LIMIT_KEYS = {f.name for f in fields(Limits)}
_SIMPLE = {
    "servername": str,
    "idle_timeout": float,
    "login_timeout": float,
    "auth_failure_delay": float,
    "allow_plaintext_login": bool,
    "sqlite_synchronous": str,
    "scrypt_n": int,
    "shutdown_timeout": float,
    "max_pending_changes": int,
}


def load(path: Path | None, **overrides: Any) -> Config:
    """Defaults, then the TOML file, then non-None ``overrides`` (command-line flags)."""
    config = Config()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config: cannot read {path}: {exc}") from exc
        config = _apply_toml(config, raw)
    changes = {k: v for k, v in overrides.items() if v is not None}
    config = replace(config, **changes)
    if config.sqlite_synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
        raise ConfigError("sqlite_synchronous: expected FULL, NORMAL or EXTRA")
    return config


def _apply_toml(config: Config, raw: dict[str, Any]) -> Config:
    changes: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SIMPLE:
            kind = _SIMPLE[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
            changes[key] = value
        elif key == "data_dir":
            changes[key] = Path(str(value))
        elif key == "listen":
            changes[key] = parse_hostport(str(value), key)
        elif key in {"lmtp", "notify_socket", "notifysocket"}:
            changes["notify_socket" if key == "notifysocket" else key] = str(value)
        elif key == "limits" and isinstance(value, dict):
            for lkey, lvalue in value.items():
                if lkey not in _LIMIT_KEYS or not isinstance(lvalue, int):
                    raise ConfigError(f"limits.{lkey}: unknown option or not an integer")
                limits[lkey] = lvalue
        else:
            raise ConfigError(f"{key}: unknown option")
    if limits:
        changes["limits"] = replace(config.limits, **limits)
    return replace(config, **changes)
