"""What every handler shares: the `Outcome` it returns.

Handlers are ``async def handle_x(session: Context, cmd) -> Outcome`` (imapd/commands/
context.py): they meet the store, never the socket, and change nothing of the connection
themselves. Every effect on it is a field of the `Outcome`: the new state (``state``, with
the ``user`` who logged in or the ``selection`` entered), an input mode (IDLE's DONE, a SASL
response, with ``resume`` to handle it), UTF8=ACCEPT, and what follows the tagged OK
(``after``: STARTTLS, COMPRESS). The session hands it to ``conn.finish`` (the one door,
imapd/protocol/connection.py). Raising `ImapError` or `StoreError` is how a handler
refuses; `refusal` turns either into an Outcome, in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from imapd.protocol.errors import ImapError
from imapd.protocol.framing import Mode
from imapd.protocol.responses import Response
from imapd.protocol.state import State
from store.api import MailboxInfo, User
from store.errors import StoreError

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from imapd.protocol.values import Secret
    from imapd.selected import SelectedView


class After(Enum):
    """What the session does right after writing the tagged OK."""

    STARTTLS = auto()  # RFC 3501 §6.2.1: the TLS handshake, then a fresh connection state
    COMPRESS = auto()  # RFC 4978 §3: deflate both ways from the next octet


@dataclass(frozen=True, slots=True)
class Selection:
    """The mailbox a SELECT/EXAMINE entered, as this user sees it, and its view."""

    mailbox: MailboxInfo
    view: SelectedView


class Stream(Protocol):
    """A command's untagged responses in batches (FETCH), written as they come, and how
    the command ends once they are all out: ``ending`` is the Outcome that replaces the
    handler's (FETCH's ``NO [EXPUNGEISSUED]``), or None."""

    def __aiter__(self) -> AsyncIterator[list[Response]]: ...

    @property
    def ending(self) -> Outcome | None: ...


#: Goes on with a SASL exchange: the client's response (None: cancelled with ``*``).
Resume = Callable[["Context", "Secret | None"], Awaitable["Outcome"]]


@dataclass(slots=True)
class Outcome:
    """Untagged ``responses`` (then any ``stream`` batches), the tagged status, and the
    command's effects on the connection (see the module docstring)."""

    text: str = "completed"
    status: str = "OK"
    code: str | None = None
    responses: list[Response] = field(default_factory=list)
    stream: Stream | None = None
    #: The new connection state; `Selected` comes with ``selection``, `Authenticated`
    #: after login with ``user``; `Authenticated` from `Selected` leaves the mailbox.
    state: State | None = None
    user: User | None = None
    selection: Selection | None = None
    #: IDLE or SASL: a continuation request instead of the tagged reply (for SASL,
    #: ``resume`` handles the client's response and returns the command's final Outcome).
    mode: Mode | None = None
    resume: Resume | None = None
    utf8: bool | None = None
    after: After | None = None


def ok(text: str = "completed", code: str | None = None, *responses: Response) -> Outcome:
    return Outcome(text=text, code=code, responses=list(responses))


def refusal(
    exc: ImapError | StoreError,
    *,
    state: State | None = None,
    responses: list[Response] | None = None,
) -> Outcome:
    """The tagged reply a refusal gets: ImapError's own status (BAD or NO), NO for a
    StoreError, each with its response code; ``state`` and ``responses`` as in Outcome."""
    status = exc.status if isinstance(exc, ImapError) else "NO"
    return Outcome(
        text=exc.text, status=status, code=exc.code, state=state, responses=responses or []
    )
