"""`Context`: everything a handler may read of its connection and do besides the store.

The session (imapd/session.py) implements it; tests use a plain class over a real store
(tests/commands/). A handler reads the user, the selected mailbox and view, the enabled
extensions, the saved search result (RFC 5182 ``$``), its origin for the change log, the
store, the configuration and capabilities; it may subscribe to the bus (NOTIFY) and ask how
much output waits unread. It changes the connection only through its `Outcome`
(imapd/commands/base.py). No module of imapd/commands imports the session or the server
(imapd/commands/ruff.toml bans it: ruff TID251).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from imapd.auth_guard import AuthGuard
from imapd.config import Config
from imapd.limits import Admission
from imapd.protocol.values import FetchAtt, SpooledLiteral
from imapd.rfc5267 import UpdateContexts
from imapd.rfc5465 import NotifyState
from imapd.selected import SelectedView
from notify.bus import Subscription
from store.api import MailboxInfo, Store, User
from store.changes import Origin


class Context(Protocol):
    """The narrow surface of a session that handlers use (see the module docstring)."""

    # --- who and where -------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The session id (Cyrus's vnd.cmu.sessionId), for logs and `Origin`."""

    @property
    def origin(self) -> Origin:
        """Who makes the changes this command commits (RFC 5423 events carry it)."""

    @property
    def peer(self) -> str:
        """The client's "host:port", for logs."""

    #: The client's name and version from its RFC 2971 ID, once sent (``imapd who``).
    client_id: str | None

    @property
    def address(self) -> str:
        """What per-address limits and login throttling count by."""

    @property
    def local_host(self) -> str | None:
        """The address the client connected to, as a URL writes it (``127.0.0.1``,
        ``[::1]``); None when not on an IP socket."""

    @property
    def tls(self) -> bool:
        """TLS is on (implicit or after STARTTLS)."""

    @property
    def tls_available(self) -> bool:
        """STARTTLS could start: a certificate is configured."""

    @property
    def compressing(self) -> bool:
        """COMPRESS=DEFLATE is on (RFC 4978)."""

    @property
    def plaintext_allowed(self) -> bool:
        """LOGIN and AUTHENTICATE PLAIN may be used now (RFC 3501 §6.2.3, RFC 8314 §5)."""

    @property
    def utf8(self) -> bool:
        """UTF8=ACCEPT is on for this connection (RFC 6855 §3)."""

    # --- server-wide things handlers need ---------------------------------------------
    @property
    def store(self) -> Store: ...

    @property
    def config(self) -> Config: ...

    @property
    def auth_guard(self) -> AuthGuard:
        """Login back-off and bounded hashing (imapd/auth_guard.py)."""

    @property
    def admission(self) -> Admission:
        """Connection limits per user and address (imapd/limits.py)."""

    def capabilities(self, *, authenticated: bool | None = None) -> list[str]:
        """The CAPABILITY list now, or as it will be once ``authenticated`` (LOGIN's OK
        carries the list after login: RFC 3501 §7.1)."""

    # --- session state -------------------------------------------------------------------
    @property
    def user(self) -> User | None: ...

    def require_user(self) -> User:
        """The logged-in user; `ImapError` when there is none."""

    @property
    def mailbox(self) -> MailboxInfo | None:
        """The selected mailbox as this user sees it (name, rights kept since SELECT)."""

    @property
    def view(self) -> SelectedView | None: ...

    def require_view(self) -> SelectedView:
        """The selected view; `ImapError` without a selected mailbox."""

    #: ENABLEd extensions (RFC 5161), changed by `imapd.commands.auth.enable`.
    enabled: set[str]
    #: RFC 5182 ``$`` as UIDs.
    saved_search: list[int]

    # --- the bus, NOTIFY -------------------------------------------------------------------
    @property
    def subscription(self) -> Subscription:
        """The session's subscription for the selected mailbox's changes."""

    def subscribe(self, limit: int) -> Subscription:
        """A new bus subscription of at most ``limit`` queued changes (NOTIFY's own)."""

    @property
    def notify(self) -> NotifyState:
        """The RFC 5465 NOTIFY registration of this session."""

    #: MessageNew's fetch-atts of the NOTIFY selected group (RFC 5465 §5.2).
    notify_fetch_atts: tuple[FetchAtt, ...]

    #: RFC 5267 updating contexts of the selected mailbox (imapd/rfc5267.py).
    contexts: UpdateContexts

    def write_buffer_size(self) -> int:
        """Octets written and not yet sent: NOTIFY overflows before they grow past a limit."""

    # --- the command's input ---------------------------------------------------------------
    def spooled(self, literal: SpooledLiteral) -> Path:
        """The file holding a big literal of the command being handled."""
