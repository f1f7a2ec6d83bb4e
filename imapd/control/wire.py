"""The control socket's wire format (pure): the request values, one JSON object a line.

Owns: `parse_request`, `request_object`, `encode`, `error`, the request values and the
limits both sides share. No I/O. The server side is imapd/control/server.py, the client side
(the CLI) imapd/control/client.py; the AF_UNIX path handling both use, imapd/control/unix.py.

Protocol: a UNIX stream socket (mode 0600: the data directory's owner only), one JSON object
per line each way, UTF-8, at most `MAX_LINE` octets. Requests carry ``op``:

- ``{"op": "changed"}``: another process committed to the store. The server publishes the
  change_log rows above the last seq it published, in commit order (store
  ``publish_foreign``), then answers ``{"ok": true, "seq": N}`` (N: the last seq published).
- ``{"op": "who"}``: ``{"ok": true, "sessions": [{id, user, peer, service, mailbox, since,
  idle, idling, tls, client}, ...]}`` (client: the RFC 2971 ID's name and version, or null).
- ``{"op": "stats"}``: ``{"ok": true, "auth_cache": {ttl, max_entries, entries, hits,
  misses, stored, expired, evicted, forgotten}}`` (null when the cache is off;
  store/authcache.py).
- ``{"op": "kick", "session": ID}`` or ``{"op": "kick", "user": NAME}``: those sessions get
  ``* BYE Disconnected by administrator`` and close; ``{"ok": true, "kicked": [ID, ...]}``
  once they are gone (or after `KICK_WAIT` seconds).
- ``{"op": "subscribe"}``: ``{"ok": true, "seq": N}``, then ``{"seq": N}`` each time the
  server publishes changes up to seq N (its own commits and caught-up foreign ones;
  coalesced: a slow reader gets only the latest N). The CLI's ``events tail --follow``.

Errors: ``{"ok": false, "error": TEXT}``; a malformed line is answered so and the
connection stays open (a line over `MAX_LINE` closes it).

Why a socket and not polling: a foreign commit reaches IDLE/NOTIFY sessions at once, the
server never wakes up for nothing, and the same channel serves ``who`` and ``kick``. A CLI
that finds no server simply skips the notice: there is nobody to tell (the next server
start begins at the end of change_log; the notification sink reads change_log itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SOCKET_NAME = "control.sock"
#: Longest line either side accepts (a ``who`` of thousands of sessions fits).
MAX_LINE = 4 * 1024 * 1024
#: Seconds a ``kick`` waits for the sessions to be gone before answering.
KICK_WAIT = 5.0
#: Seconds the CLI waits for an answer (the server answers ``changed`` after publishing).
CLIENT_TIMEOUT = 10.0
KICK_TEXT = "Disconnected by administrator"


class ProtocolError(ValueError):
    """A request line that is not JSON, not an object, or not a known request."""


@dataclass(frozen=True, slots=True)
class Changed:
    """Another process committed: publish what change_log holds beyond our last seq."""


@dataclass(frozen=True, slots=True)
class Who:
    """List the live sessions."""


@dataclass(frozen=True, slots=True)
class Stats:
    """The server's counters (today: the authentication cache's)."""


@dataclass(frozen=True, slots=True)
class Kick:
    """Disconnect one session (by id) or every session of a user."""

    session: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Push ``{"seq": N}`` after each publish, until the client goes away."""


Request = Changed | Who | Kick | Subscribe | Stats


def parse_request(line: bytes) -> Request:
    """One request line (without or with its LF) -> a Request. Raises ProtocolError."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    match data.get("op"):
        case "changed":
            return Changed()
        case "who":
            return Who()
        case "stats":
            return Stats()
        case "subscribe":
            return Subscribe()
        case "kick":
            session, user = data.get("session"), data.get("user")
            if (session is None) == (user is None):
                raise ProtocolError("kick: give exactly one of session and user")
            if not isinstance(session or user, str) or not (session or user):
                raise ProtocolError("kick: session and user are non-empty strings")
            return Kick(session=session, user=user)
        case op:
            raise ProtocolError(f"unknown op {op!r}")


def request_object(req: Request) -> dict[str, object]:
    """The JSON object of a Request (the client side of `parse_request`)."""
    match req:
        case Changed():
            return {"op": "changed"}
        case Who():
            return {"op": "who"}
        case Stats():
            return {"op": "stats"}
        case Subscribe():
            return {"op": "subscribe"}
        case Kick(session=session, user=user):
            return {"op": "kick", "session": session} if session else {"op": "kick", "user": user}


def encode(obj: Mapping[str, object]) -> bytes:
    """One line: compact JSON, raw UTF-8, LF."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error(text: str) -> dict[str, object]:
    return {"ok": False, "error": text}
