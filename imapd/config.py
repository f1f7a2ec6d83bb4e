"""Server configuration: one frozen `Config` built from defaults, a TOML file, `IMAPD_*`
environment variables and flags, in that order of precedence (flags win).

Owns: every tunable with its default and the reason for it, and the checks that refuse an
invalid configuration at start with a message naming the option. The TOML keys use Cyrus's
option names where one exists (``notifysocket``; ``tls_server_cert``/``tls_server_key`` are
accepted for ``tls_cert_file``/``tls_key_file``); an environment variable is ``IMAPD_`` and
the option's name in capitals (``IMAPD_LISTEN_TLS``, ``IMAPD_LIMITS_MAX_LINE_LENGTH``).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from imapd.protocol.connection import Limits

_EVENT_GROUPS = (
    "message",
    "quota",
    "flags",
    "access",
    "mailbox",
    "subscription",
    "calendar",
    "applepushservice",
)
_EVENT_EXTRA_PARAMS = (
    "timestamp",
    "service",
    "messages",
    "modseq",
    "uidnext",
    "vnd.cmu.midset",
    "vnd.cmu.unseenMessages",
    "vnd.cmu.sessionId",
    "bodyStructure",
    "vnd.cmu.envelope",
    "messageSize",
    "diskUsed",
)
_EVENT_EXTRA_KNOWN = frozenset(
    {
        *_EVENT_EXTRA_PARAMS,
        "clientAddress",
        "flagNames",
        "messageContent",
        "messageHeaders",
        "vnd.imapd.seq",  # ours: the change_log seq (notify/cyrus.py)
        "vnd.cmu.emailid",
    }
)  # RFC 8474 EMAILID (notify/cyrus.py)
_CONTENT_MODES = ("standard", "message", "header", "body", "headerbody")
_WORD_LISTS = {
    "event_groups",
    "event_extra_params",
    "event_exclude_flags",
    "event_exclude_specialuse",
}


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
    #: Seconds from connect to a successful login, however many bytes trickle in meanwhile
    #: (Dovecot's login processes: 3 minutes, absolute). Some clients connect, then ask
    #: their user for the password: a person needs the minutes, a script does not.
    login_timeout: float = 180.0
    #: A client that reads none of the output pending for it for this long is cut off
    #: (Dovecot disconnects a client whose output stalls); what it holds is freed.
    write_timeout: float = 60.0
    #: A literal in flight whose client sends nothing for this long ends the connection
    #: (its spool file is removed); between commands ``idle_timeout`` applies.
    literal_timeout: float = 60.0
    #: Delay before answering a failed LOGIN/AUTHENTICATE; it doubles with each recent
    #: failure from the address or for the user (halving every 5 minutes without), up to
    #: auth_failure_delay_max (imapd/auth_guard.py). 0 turns the back-off off.
    auth_failure_delay: float = 2.0
    auth_failure_delay_max: float = 15.0
    #: Connections held at once (past it: ``* BYE [UNAVAILABLE]``; 0: no limit but the
    #: descriptor limit, which also lowers this at start: imapd/limits.py).
    max_connections: int = 1000
    #: ... from one address (an IPv6 /64), logged in or not: a NAT of ten users with ten
    #: connections each fits; one address cannot take more than a tenth of the server
    #: (Postfix: 50 per client; Cyrus maxlogins_per_host: unlimited). 0: no limit.
    max_connections_per_ip: int = 100
    #: ... logged in as one user from one address: further logins get ``NO [LIMIT]``
    #: (Dovecot's mail_max_userip_connections, same default). 0: no limit.
    max_connections_per_user_ip: int = 10
    #: RFC 3501 §6.2.3: LOGIN over cleartext. None: allowed only on loopback listeners.
    allow_plaintext_login: bool | None = None
    #: "FULL": an OK survives power loss; "NORMAL": survives kill -9 only (SQLite WAL docs).
    sqlite_synchronous: str = "FULL"
    #: What `serve` checks of the database before serving: "quick" (PRAGMA quick_check,
    #: reads every page: about a second per GB) or "schema" (header and schema only, for
    #: stores too big to read at each start; `imapd fsck` does the full check).
    startup_check: str = "quick"
    #: scrypt cost for new password hashes (2**14 is hashlib's documented interactive cost).
    scrypt_n: int = 2**14
    #: Authentication cache (store/authcache.py; Dovecot's auth_cache_ttl/auth_cache_size):
    #: a right password is taken without scrypt for this many seconds after it was
    #: verified against the same stored hash. Webmail logs in on every page view; 5
    #: minutes is about a reading pause (Dovecot's own ttl default is 1 hour, its cache
    #: off until sized). A password change misses at once. 0 disables.
    auth_cache_ttl: float = 300.0
    #: ... entries kept at most, least recently used dropped first (~200 bytes each). 0
    #: disables.
    auth_cache_size: int = 10_000
    #: Seconds in-flight commands get to finish on SIGTERM before connections are cut.
    shutdown_timeout: float = 10.0
    #: Unread changes a session may queue before it is disconnected (selected mailbox).
    max_pending_changes: int = 10_000
    #: NOTIFY (RFC 5465 §5.8): changes a session's NOTIFY queue holds, and octets its socket
    #: may have unsent, before the session gets NOTIFICATIONOVERFLOW and NOTIFY NONE (mox
    #: disconnects past CommPendingChangesMax; asyncio's drain blocks from 64 KiB).
    notify_queue_limit: int = 1000
    notify_write_high_water: int = 256 * 1024
    #: METADATA (RFC 5464 §4.1 asks for at least 1024 octets and 10 entries): octets of one
    #: annotation value, and entries per mailbox (or on the server) per user.
    metadata_max_size: int = 64 * 1024
    metadata_max_entries: int = 256
    #: /private annotations; False answers their SETMETADATA with [METADATA NOPRIVATE].
    metadata_private: bool = True
    #: Seconds between runs of message expiry (per-mailbox retention); 0 turns the timer off
    #: (`imapd expire` still works). Cyrus runs cyr_expire daily from cron; hourly is cheap.
    expire_interval: float = 3600.0
    #: XAPPLEPUSHSERVICE's topic (Cyrus's aps_topic, the APNs certificate's UID); the
    #: command is advertised and accepted only when it is set.
    aps_topic: str | None = None
    #: LMTP delivery to a user over quota: False answers 552 5.2.2 (permanent: the MTA
    #: bounces), True 452 4.2.2 (the MTA keeps the message and retries; Cyrus's
    #: lmtp_over_quota_perm_failure off, Dovecot's quota_full_tempfail).
    lmtp_overquota_temporary: bool = False
    #: Calendar alarms (docs/calendar.md; needs the [calendar] extra): alarms that fell due
    #: while no server ran fire at start if at most this many seconds late, older ones are
    #: skipped with a log line (Cyrus calalarmd does the same at start).
    calendar_alarm_lookback: float = 3600.0
    #: TESTS ONLY: an ISO 8601 instant ("2026-03-01T08:00:00Z"); the server's clock (store
    #: timestamps, the alarm scheduler) then stands still there, so that a test restarts a
    #: real server "later" without waiting. Never set it in production.
    calendar_test_clock: str | None = None

    # TLS (RFC 8314 implicit TLS on ``listen_tls``; STARTTLS, RFC 3501 §6.2.1, on ``listen``
    # once a certificate is configured). SIGHUP reloads the files for new connections.
    #: HOST:PORT of the implicit-TLS listener (port 993 style); needs ``tls_cert_file``.
    listen_tls: tuple[str, int] | None = None
    #: PEM certificate chain (Cyrus: tls_server_cert) and key (tls_server_key; unset: the
    #: key is in the certificate file).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: Operations: a file holding the server's pid while it runs; log lines as "text" or
    #: "json" (one JSON object per line: time, level, logger, message, session).
    pid_file: Path | None = None
    log_format: str = "text"

    # Message-store events (RFC 5423) in Cyrus's JSON to ``notify_socket`` (TOML
    # ``notifysocket``); names as Cyrus's imapoptions, defaults give the example files' keys.
    #: The notifyd method put in each datagram (notifyd: log, external, ...).
    event_notifier: str = "log"
    #: Groups sent: message quota flags access mailbox subscription calendar applepushservice.
    event_groups: tuple[str, ...] = _EVENT_GROUPS
    #: Optional parameters (timestamp, service, messages, ..., messageContent, messageHeaders).
    event_extra_params: tuple[str, ...] = _EVENT_EXTRA_PARAMS
    #: Flags never reported in flagNames (so never turned into MessageRead/MessageTrash).
    event_exclude_flags: tuple[str, ...] = ()
    #: No message/flag events for mailboxes with these special uses; "ALL": INBOX only.
    event_exclude_specialuse: tuple[str, ...] = ("\\Junk",)
    #: messageContent: standard | message | header | body | headerbody, cut at event_content_size.
    event_content_inclusion_mode: str = "standard"
    event_content_size: int = 0
    #: Changes the notification sink catches up on after an outage; older ones are skipped
    #: (counted and logged). Ours: Cyrus keeps no backlog at all.
    event_backlog_max: int = 100_000
    # --- event_notifier = "jetstream": events into NATS JetStream (docs/jetstream.md) ---
    #: nats://HOST:PORT (comma-separated for several); needed by the jetstream notifier.
    jetstream_url: str | None = None
    #: The stream, created if absent with file storage and the two limits below.
    jetstream_stream: str = "IMAPD_EVENTS"
    #: Subjects are PREFIX.<event type>.<user> (notify/jetstream.py escapes the tokens).
    jetstream_subject_prefix: str = "imapd"
    #: A NATS credentials file (JWT + NKey seed), when the server asks for one.
    jetstream_creds: Path | None = None
    #: A created stream's limits: seconds a message is kept, octets the stream holds.
    jetstream_max_age: float = 7 * 24 * 3600.0
    jetstream_max_bytes: int = 1 << 30
    #: Messages published and not yet acknowledged by the stream, at most (the window).
    jetstream_max_inflight: int = 1000
    # --- end jetstream ---
    # --- several processes on one store (docs/workers.md, imapd/cluster/) ---
    #: ``imapd serve --workers N``: N processes sharing the listening sockets (1: as before).
    workers: int = 1
    #: Cluster roles and the session registry in the store, also with one process each
    #: (several ``imapd serve`` on one PostgreSQL store); always on with workers > 1.
    #: None (unset): on with a PostgreSQL store, off on SQLite (imapd/server.py).
    cluster: bool | None = None
    #: Seconds a role's lease lasts without renewal (a dead holder's roles move after it).
    cluster_lease_time: float = 5.0
    # --- end cluster ---

    @property
    def db_path(self) -> Path:
        return self.data_dir / "imapd.sqlite3"


def parse_hostport(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


_LIMIT_KEYS = {f.name for f in fields(Limits)}
_PATHS = {
    "data_dir": "data_dir",
    "tls_cert_file": "tls_cert_file",
    "tls_key_file": "tls_key_file",
    "tls_server_cert": "tls_cert_file",
    "tls_server_key": "tls_key_file",
    "pid_file": "pid_file",
    "jetstream_creds": "jetstream_creds",
}
_LOG_FORMATS = ("text", "json")
ENV_PREFIX = "IMAPD_"
#: Environment variables that are not options: the TOML file's path.
ENV_CONFIG = "IMAPD_CONFIG"
#: ... the container entrypoint's users to seed (docker/entrypoint.sh) and the webhook
#: listener's secret (imapd notifyd --method webhook).
_ENV_NOT_OPTIONS = frozenset(
    {
        ENV_CONFIG,
        "IMAPD_USERS",
        "IMAPD_WEBHOOK_SECRET",
        # issue 18: the store URL and pool size (store/open.py)
        "IMAPD_STORE",
        "IMAPD_STORE_POOL",
    }
)
_SIMPLE = {
    "servername": str,
    "idle_timeout": float,
    "login_timeout": float,
    "write_timeout": float,
    "literal_timeout": float,
    "auth_failure_delay": float,
    "auth_failure_delay_max": float,
    "max_connections": int,
    "max_connections_per_ip": int,
    "max_connections_per_user_ip": int,
    "allow_plaintext_login": bool,
    "sqlite_synchronous": str,
    "startup_check": str,
    "scrypt_n": int,
    "auth_cache_ttl": float,
    "auth_cache_size": int,
    "shutdown_timeout": float,
    "max_pending_changes": int,
    "notify_queue_limit": int,
    "notify_write_high_water": int,
    "metadata_max_size": int,
    "metadata_max_entries": int,
    "metadata_private": bool,
    "expire_interval": float,
    "aps_topic": str,
    "lmtp_overquota_temporary": bool,
    "calendar_alarm_lookback": float,
    "calendar_test_clock": str,
    "event_notifier": str,
    "event_content_inclusion_mode": str,
    "event_content_size": int,
    "event_backlog_max": int,
    "jetstream_url": str,  # jetstream: docs/jetstream.md
    "jetstream_stream": str,
    "jetstream_subject_prefix": str,
    "jetstream_max_age": float,
    "jetstream_max_bytes": int,
    "jetstream_max_inflight": int,
    "log_format": str,
    "workers": int,  # docs/workers.md
    "cluster": bool,
    "cluster_lease_time": float,
}


def load(path: Path | None, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file, then ``IMAPD_*`` variables of ``env`` (the process
    environment in `imapd.cli.common`; None: none), then non-None ``overrides`` (flags)."""
    config = Config()
    if path is None and env is not None and env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG])
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config: cannot read {path}: {exc}") from exc
        config = _apply_toml(config, raw)
    if env is not None:
        config = _apply_env(config, env)
    changes = {k: v for k, v in overrides.items() if v is not None}
    config = replace(config, **changes)
    _check_operations(config)
    _check_events(config)
    if config.workers < 1 or config.cluster_lease_time < 0.3:  # docs/workers.md
        raise ConfigError("workers: at least 1; cluster_lease_time: at least 0.3 s")
    for name in ("write_timeout", "literal_timeout"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{name}: must be > 0")
    if config.limits.literal_spool_size < 1 or config.limits.max_literal_total < 1:
        raise ConfigError("limits.literal_spool_size, limits.max_literal_total: must be >= 1")
    if config.sqlite_synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
        raise ConfigError("sqlite_synchronous: expected FULL, NORMAL or EXTRA")
    if config.startup_check not in {"quick", "schema"}:
        raise ConfigError("startup_check: expected quick or schema")
    if config.lmtp is not None and "/" not in config.lmtp:
        parse_hostport(config.lmtp, "lmtp")  # a path contains "/"; otherwise HOST:PORT
    return config


def _check_operations(config: Config) -> None:
    """TLS and operations options that only make sense together."""
    if config.listen_tls is not None and config.tls_cert_file is None:
        raise ConfigError("listen_tls: needs tls_cert_file (and tls_key_file)")
    if config.tls_key_file is not None and config.tls_cert_file is None:
        raise ConfigError("tls_key_file: set without tls_cert_file")
    if config.log_format not in _LOG_FORMATS:
        raise ConfigError(f"log_format: expected one of {_LOG_FORMATS}, got {config.log_format!r}")
    for name in (
        "max_connections",
        "max_connections_per_ip",
        "max_connections_per_user_ip",
        "auth_failure_delay",
        "auth_failure_delay_max",
        "login_timeout",
        "auth_cache_ttl",
        "auth_cache_size",
    ):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name}: must be >= 0")


def _env_value(key: str, text: str) -> object:
    """An environment string as the TOML value ``key`` expects (TOML checks the rest)."""
    kind = _SIMPLE.get(key)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"expected true or false, got {text!r}")
    if kind is int or kind is float or key.startswith("limits."):
        try:
            return int(text) if kind is not float else float(text)
        except ValueError:
            name = "float" if kind is float else "int"
            raise ConfigError(f"expected {name}, got {text!r}") from None
    return text


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    """``IMAPD_OPTION=value`` for every TOML option; ``IMAPD_LIMITS_X`` for ``[limits] x``.
    An unknown ``IMAPD_*`` name is refused like an unknown TOML key (a typo must not pass
    silently)."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_OPTIONS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        limit = key.removeprefix("limits_")
        try:
            if key.startswith("limits_") and limit in _LIMIT_KEYS:
                value = _env_value("limits." + limit, env[name])
                config = _apply_toml(config, {"limits": {limit: value}})
            else:
                config = _apply_toml(config, {key: _env_value(key, env[name])})
        except ConfigError as exc:
            raise ConfigError(f"{name} (environment): {exc}") from None
    return config


def _check_events(config: Config) -> None:
    for group in config.event_groups:
        if group not in _EVENT_GROUPS:
            raise ConfigError(f"event_groups: unknown group {group!r}")
    for param in config.event_extra_params:
        if param not in _EVENT_EXTRA_KNOWN:
            raise ConfigError(f"event_extra_params: unknown parameter {param!r}")
    if config.event_content_inclusion_mode not in _CONTENT_MODES:
        raise ConfigError(f"event_content_inclusion_mode: expected one of {_CONTENT_MODES}")
    if config.event_content_size < 0:
        raise ConfigError("event_content_size: must be >= 0")
    if config.calendar_alarm_lookback < 0:
        raise ConfigError("calendar_alarm_lookback: must be >= 0")
    if config.calendar_test_clock is not None:
        try:
            when = dt.datetime.fromisoformat(config.calendar_test_clock)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ConfigError("calendar_test_clock: expected an ISO 8601 instant with offset")
    if config.event_backlog_max < 1:
        raise ConfigError("event_backlog_max: must be >= 1")
    if not config.event_notifier or "\0" in config.event_notifier:
        raise ConfigError("event_notifier: must be a non-empty method name")
    if config.event_notifier == "jetstream":  # the server publishes itself: no datagrams
        from imapd.jetstream import check_config

        check_config(config)


def _words(key: str, value: object) -> tuple[str, ...]:
    """Cyrus writes lists space-separated ("message flags"); TOML arrays work too."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{key}: expected a space-separated string or an array of strings")


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
        elif key in _WORD_LISTS:
            changes[key] = _words(key, value)
        elif key in _PATHS:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key}: expected a path, got {value!r}")
            changes[_PATHS[key]] = Path(value)
        elif key in {"listen", "listen_tls"}:
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
