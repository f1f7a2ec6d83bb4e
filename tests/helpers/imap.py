"""An imapclient connection to a test server, logged in."""

from __future__ import annotations

import imapclient

from tests.helpers.server import PASSWORD, RunningServer


def client(server: RunningServer, user: str = "alice") -> imapclient.IMAPClient:
    """imapclient on ``server``, logged in as ``user`` (password `PASSWORD`)."""
    c = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    c.login(user, PASSWORD)
    return c
