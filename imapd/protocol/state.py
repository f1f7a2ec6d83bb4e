"""Connection states as values; which commands each allows; which changes are legal.

Owns: the four RFC 3501 §3 states, `ALLOWED` (command type -> states, RFC 3501 §6) and
`TRANSITIONS` (legal (from, to) pairs; a hole is a bug in the caller, not a client error).
IDLE and SASL exchanges are input *modes* of the connection, not states. Must not import
asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from imapd.protocol import commands as c


@dataclass(frozen=True, slots=True)
class NotAuthenticated:
    pass


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: str


@dataclass(frozen=True, slots=True)
class Selected:
    user: str
    mailbox: str
    readonly: bool


@dataclass(frozen=True, slots=True)
class Logout:
    pass


State: TypeAlias = NotAuthenticated | Authenticated | Selected | Logout
StateType: TypeAlias = type[NotAuthenticated] | type[Authenticated] | type[Selected] | type[Logout]

_ANY: Final[frozenset[StateType]] = frozenset({NotAuthenticated, Authenticated, Selected})
_NOT_AUTH: Final[frozenset[StateType]] = frozenset({NotAuthenticated})
_AUTH: Final[frozenset[StateType]] = frozenset({Authenticated, Selected})
_SELECTED: Final[frozenset[StateType]] = frozenset({Selected})

#: RFC 3501 §6.1-§6.4 on one screen. UID forms share their command's type.
ALLOWED: Final[dict[type[c.Command], frozenset[StateType]]] = {
    # RFC 3501 §6.1: any state (ID: RFC 2971 §3.1)
    c.Capability: _ANY,
    c.Noop: _ANY,
    c.Logout: _ANY,
    c.Id: _ANY,
    # RFC 3501 §6.2: not authenticated
    c.StartTLS: _NOT_AUTH,
    c.Authenticate: _NOT_AUTH,
    c.Login: _NOT_AUTH,
    # RFC 3501 §6.3: authenticated (and therefore selected)
    c.Select: _AUTH,
    c.Create: _AUTH,
    c.Delete: _AUTH,
    c.Rename: _AUTH,
    c.Subscribe: _AUTH,
    c.Unsubscribe: _AUTH,
    c.List: _AUTH,
    c.Status: _AUTH,
    c.Append: _AUTH,
    c.Namespace: _AUTH,  # RFC 2342 §5
    c.SetAcl: _AUTH,  # RFC 4314 §3: authenticated or selected
    c.DeleteAcl: _AUTH,
    c.GetAcl: _AUTH,
    c.ListRights: _AUTH,
    c.MyRights: _AUTH,
    c.Idle: _AUTH,  # RFC 2177 §3
    # RFC 5161 §3.1 says authenticated state only; Dovecot also allows it when selected.
    c.Enable: _AUTH,
    c.GetMetadata: _AUTH,  # RFC 5464 §4.2-4.3: authenticated or selected
    c.SetMetadata: _AUTH,
    c.Compress: _AUTH,  # RFC 4978 §5: command-auth
    c.XApplePushService: _AUTH,  # Cyrus: authenticated or selected
    c.GetQuota: _AUTH,  # RFC 9208 §4.1: authenticated or selected
    c.GetQuotaRoot: _AUTH,
    c.SetQuota: _AUTH,
    c.Notify: _AUTH,  # RFC 5465 §8: command-auth
    c.GenUrlAuth: _AUTH,  # RFC 4467 §9: command-auth
    c.ResetKey: _AUTH,
    c.UrlFetch: _AUTH,
    # RFC 3501 §6.4: selected
    c.Check: _SELECTED,
    c.Close: _SELECTED,
    c.Unselect: _SELECTED,  # RFC 3691
    c.Expunge: _SELECTED,
    c.Search: _SELECTED,
    c.Fetch: _SELECTED,
    c.Store: _SELECTED,
    c.Copy: _SELECTED,  # also MOVE, RFC 6851
    c.Sort: _SELECTED,  # RFC 5256 §3
    c.Thread: _SELECTED,
    c.CancelUpdate: _SELECTED,  # RFC 5267 §5: command-select
    c.Replace: _SELECTED,  # RFC 8508 §3.5
}

#: Legal (from, to) state changes; staying in the same state type is always listed.
TRANSITIONS: Final[frozenset[tuple[StateType, StateType]]] = frozenset(
    {
        (NotAuthenticated, NotAuthenticated),
        (NotAuthenticated, Authenticated),  # LOGIN, AUTHENTICATE, PREAUTH greeting
        (NotAuthenticated, Logout),
        (Authenticated, Authenticated),
        (Authenticated, Selected),  # SELECT, EXAMINE
        (Authenticated, Logout),
        (Selected, Selected),  # SELECT of another mailbox
        (Selected, Authenticated),  # CLOSE, UNSELECT, failed SELECT (RFC 3501 §6.3.1)
        (Selected, Logout),
    }
)


class IllegalTransition(RuntimeError):
    """A state change missing from TRANSITIONS: a server bug, never a client error."""


def check_transition(old: State, new: State) -> None:
    """Raise `IllegalTransition` unless (type(old), type(new)) is in TRANSITIONS."""
    if (type(old), type(new)) not in TRANSITIONS:
        raise IllegalTransition(f"{type(old).__name__} -> {type(new).__name__}")


def allowed(command: c.Command, state: State) -> bool:
    """Whether ``command`` may run in ``state`` (RFC 3501 §6)."""
    return type(state) in ALLOWED[type(command)]


def expunge_allowed_after(command: c.Command) -> bool:
    """Whether EXPUNGE responses may go out with ``command``'s answer: not after FETCH,
    STORE or SEARCH, whose sequence numbers the client is still reading (RFC 3501 §7.4.1);
    their UID forms are fine."""
    return not (isinstance(command, c.Fetch | c.Store | c.Search) and not command.uid)
