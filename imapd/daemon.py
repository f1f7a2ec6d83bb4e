"""Process-level operations for `imapd serve`: log line formats, the pid file, and systemd's
readiness protocol; the garbage collector's settings.

Owns: `configure_logging` (``text``: one line per event as before; ``json``: one JSON object
per line with time, level, logger, message and the session id when the record was logged
inside a session's task), `SESSION_ID` (the context variable the server sets per connection
task, so handler, store and session records all carry it), `PidFile`, and `sd_notify` (the
``Type=notify`` protocol of sd_notify(3): one datagram to ``$NOTIFY_SOCKET``, standard library
only), `tune_gc` (the collector's settings for many connections). Imports nothing of the
server.
"""

from __future__ import annotations

import contextvars
import gc
import json
import logging
import os
import socket
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

#: The id of the session whose task is running (Cyrus's vnd.cmu.sessionId); None outside.
SESSION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "imapd_session_id", default=None
)

#: The client the session's peer said it is (RFC 2971 ID: name and version, quoted for a
#: log line), set by the ID handler in the session's task; None before ID or outside.
SESSION_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "imapd_session_client", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, and on records logged in a session that sent ID, `` (client ...)``
    after the message: an operator tells Thunderbird from a script on every line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = super().formatMessage(record)
        client = getattr(record, "client", None) or SESSION_CLIENT.get()
        return f"{text} (client {client})" if client else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes in ``exc`` (escaped, so still one line)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        session = getattr(record, "session", None) or SESSION_ID.get()
        if session:
            entry["session"] = session
        client = getattr(record, "client", None) or SESSION_CLIENT.get()
        if client:
            entry["client"] = client
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str, *, verbose: bool = False) -> None:
    """Replace the root handler: text lines or JSON lines on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )


class PidFile:
    """Write our pid to ``path`` on enter (atomically: a reader never sees half a file),
    remove it on exit if it still holds our pid (clean exits only; a kill -9 leaves it, as
    with every daemon: the init system or the next start overwrites it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()

    def __enter__(self) -> PidFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{self.pid}")
        tmp.write_text(f"{self.pid}\n", encoding="ascii")
        tmp.replace(self.path)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.path.read_text(encoding="ascii").strip() == str(self.pid):
                self.path.unlink()
        except OSError as error:
            logging.getLogger("imapd").warning("pid file %s not removed: %s", self.path, error)


#: Young-generation collections every this many allocations (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collector settings for a server of many long-lived connections (call once serving).

    With CPython's defaults a fan-out to thousands of listeners, which allocates a little
    per listener, ran a full collection every few seconds, and a full collection walks every
    connection's objects: 60-120 ms with the event loop stopped at 2,000 connections
    (``scripts/bench notify``; p99 from the APPEND 143 ms, writer's APPEND p99 84 ms). Young
    collections 30 times rarer leave short-lived objects time to die by reference counting,
    so few survive into the old generations and full collections become rare (none in that
    run: p99 78 ms, 15 ms). The start-up objects (modules, configuration) live as long as
    the process: frozen, no collection walks them again."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``STATUS=...``) to the service manager.

    sd_notify(3): ``$NOTIFY_SOCKET`` is a UNIX datagram socket path, or an abstract one when
    it starts with ``@``. Without the variable (not run by systemd) this does nothing and
    returns False; a send error is logged, never fatal."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        logging.getLogger("imapd").warning("sd_notify %s to %s failed: %s", state, address, exc)
        return False
    return True
