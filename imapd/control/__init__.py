"""The control socket (``DATA_DIR/control.sock``): how admin commands talk to a running server.

imapd/control/wire.py: the line protocol (pure; its docstring describes it);
imapd/control/server.py: `ControlServer` (the server side); imapd/control/client.py: what the
CLI uses; imapd/control/unix.py: the socket's path. The names are re-exported here, so
``from imapd import control`` then ``control.request(...)``, ``control.Who()`` work.
"""

from imapd.control.client import NoServer, Subscription, notify_changed, request
from imapd.control.server import ControlServer, session_info
from imapd.control.unix import addressable, socket_path
from imapd.control.wire import (
    CLIENT_TIMEOUT,
    KICK_TEXT,
    KICK_WAIT,
    MAX_LINE,
    SOCKET_NAME,
    Changed,
    Kick,
    ProtocolError,
    Request,
    Stats,
    Subscribe,
    Who,
    encode,
    error,
    parse_request,
    request_object,
)

__all__ = [
    "CLIENT_TIMEOUT",
    "KICK_TEXT",
    "KICK_WAIT",
    "MAX_LINE",
    "SOCKET_NAME",
    "Changed",
    "ControlServer",
    "Kick",
    "NoServer",
    "ProtocolError",
    "Request",
    "Stats",
    "Subscribe",
    "Subscription",
    "Who",
    "addressable",
    "encode",
    "error",
    "notify_changed",
    "parse_request",
    "request",
    "request_object",
    "session_info",
    "socket_path",
]
