"""Handlers without a socket: a plain `Context` over a real SqliteStore and a real EventBus.
The fixtures that build one are in tests/commands/conftest.py.

What is replaced is the session (imapd/session.py), not the store nor the protocol: commands
are parsed by the real sans-IO core (`command`), handlers run against a real SQLite file in
tmp_path, and `TestContext.finish` applies an Outcome the way the session does (its side,
then ``conn.finish``, the one door) and returns the bytes the client would read.
"""

from __future__ import annotations

from pathlib import Path

from imapd.auth_guard import AuthGuard
from imapd.commands import HANDLERS
from imapd.commands.base import Outcome, refusal
from imapd.config import Config
from imapd.limits import Admission
from imapd.protocol import commands as c
from imapd.protocol.connection import ServerConnection
from imapd.protocol.errors import ImapError
from imapd.protocol.responses import Response
from imapd.protocol.state import Authenticated, NotAuthenticated, Selected, State
from imapd.protocol.values import FetchAtt, SpooledLiteral
from imapd.rfc5267 import UpdateContexts
from imapd.rfc5465 import NotifyState
from imapd.selected import SelectedView
from notify.bus import EventBus, Subscription
from store.api import MailboxInfo, NewMessage, User
from store.changes import Origin
from store.errors import StoreError
from store.sqlite import SqliteStore


class TestContext:
    """The `Context` Protocol as plain attributes; ``conn`` is a real sans-IO core."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, store: SqliteStore, bus: EventBus, config: Config, user: User) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        self.id = "unit-session"
        self.peer = "127.0.0.1:40000"
        self.client_id: str | None = None
        self.address = "127.0.0.1"
        self.local_host: str | None = "127.0.0.1"
        self.tls = False
        self.tls_available = False
        self.compressing = False
        self.plaintext_allowed = True
        self.auth_guard = AuthGuard(0.0, 0.0)
        self.admission = Admission(100, 100, 100)
        self.conn = ServerConnection(config.limits)
        self.conn.set_state(Authenticated(user.name))
        self.user: User | None = user
        self.mailbox: MailboxInfo | None = None
        self.view: SelectedView | None = None
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []
        self.subscription = bus.subscribe(1000)
        self.notify = NotifyState()
        self.notify_fetch_atts: tuple[FetchAtt, ...] = ()
        self.contexts = UpdateContexts()
        self.unsent = 0

    @property
    def origin(self) -> Origin:
        return Origin(
            session=self.id,
            user=self.user.name if self.user else None,
            service="imap",
            client=self.peer,
        )

    @property
    def utf8(self) -> bool:
        return self.conn.utf8

    def capabilities(self, *, authenticated: bool | None = None) -> list[str]:
        return ["IMAP4rev1", "ENABLE", "CONDSTORE", "QRESYNC", "UTF8=ACCEPT"]

    def require_user(self) -> User:
        if self.user is None:
            raise ImapError("Not authenticated")
        return self.user

    def require_view(self) -> SelectedView:
        if self.view is None:
            raise ImapError("No mailbox selected")
        return self.view

    def subscribe(self, limit: int) -> Subscription:
        return self.bus.subscribe(limit)

    def write_buffer_size(self) -> int:
        return self.unsent

    def spooled(self, literal: SpooledLiteral) -> Path:
        raise AssertionError("no literal is spooled in these tests")

    # --- what the session does with an Outcome -------------------------------------------
    async def run(self, line: bytes) -> Outcome:
        """Parse ``line`` with the real core, run its handler; refusals become Outcomes as
        in the session (a bug propagates: these tests want to see it)."""
        cmd = command(line, self.conn.state)
        try:
            return await HANDLERS[type(cmd)](self, cmd)
        except (ImapError, StoreError) as exc:
            return refusal(exc)

    async def finish(self, line: bytes, outcome: Outcome) -> bytes:
        """The session's side of ``outcome`` (user, selection, leaving), the stream, then
        ``conn.finish``: the bytes the client reads."""
        cmd = command(line, self.conn.state)
        match outcome.state:
            case Selected():
                assert outcome.selection is not None
                self.mailbox, self.view = outcome.selection.mailbox, outcome.selection.view
                self.saved_search = []
            case Authenticated() if outcome.user is None:
                self.mailbox = self.view = None
                self.saved_search = []
        responses: list[Response] = list(outcome.responses)
        if (stream := outcome.stream) is not None:
            async for batch in stream:
                responses += batch
            ending = stream.ending or outcome
            outcome = Outcome(ending.text, ending.status, ending.code, responses)
        return self.conn.send(self.conn.finish(cmd, outcome))

    async def do(self, line: bytes) -> tuple[Outcome, bytes]:
        outcome = await self.run(line)
        return outcome, await self.finish(line, outcome)


def command(line: bytes, state: State | None = None) -> c.Command:
    """``line`` (CRLF added) as the real core parses it in ``state`` (default: INBOX
    selected); literals must be non-synchronizing (``{n+}``)."""
    state = state or Selected("alice", "INBOX", False)
    conn = ServerConnection()
    if not isinstance(state, NotAuthenticated):
        conn.set_state(Authenticated("alice"))
        conn.set_state(state)
    conn.receive_data(line + b"\r\n")
    event = conn.next_event()
    assert isinstance(event, c.Command), event
    return event


def message(subject: str = "Hello", body: str = "Body text\r\n") -> NewMessage:
    raw = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\n{body}"
    return NewMessage(raw.encode())
