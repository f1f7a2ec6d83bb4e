"""NOTIFY (RFC 5465 §6) mailbox filters as precomputed predicates. Pure: no I/O, no IMAP.

Owns: which event group of a registration applies to a mailbox, given the facts a change
carries (owner, name, id) and the few facts a session keeps up to date from the feed itself
(its subscriptions). A registration is compiled once per NOTIFY SET into `Registration`;
matching a change is then a handful of string comparisons per group, never a query, so one
change reaches thousands of listening sessions without touching the database.

Decisions (docs/notify.md): groups are tried in order and the first matching one wins, a
matching ``NONE`` group included ("Overlapping groups", as mox); ``inboxes`` is
``personal`` (RFC 5465 §6.3: a server that cannot tell where an MDA delivers treats them alike; the
LMTP service delivers into any personal mailbox); ``subtree X`` is X and every name below
it (hierarchy-aware, RFC 5465 §6.5); ``mailboxes X`` exactly X, ``*`` and ``%`` are not wildcards.
Names are the viewer's (``Other Users/alice/Team``), as the client wrote them. Must not
import imapd.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from store.api import DELIMITER

#: RFC 5465 §5: the events this server supports, in the order BADEVENT lists them (§3.1, §8).
SUPPORTED_EVENTS: tuple[str, ...] = (
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
    "MailboxMetadataChange",
    "ServerMetadataChange",
)
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
SELECTED_FILTERS = frozenset({"selected", "selected-delayed"})


@dataclass(frozen=True, slots=True)
class MailboxFacts:
    """What a filter looks at: the mailbox as the viewer names it."""

    owner: str  # the owner's user name ("" for shared mailboxes)
    name: str  # the viewer's name for it
    personal: bool  # owned by the viewer
    subscribed: bool


@dataclass(frozen=True, slots=True)
class Group:
    """One compiled event group: ``events`` empty for ``NONE`` (a veto: docs/notify.md,
    "Overlapping groups")."""

    filter: str
    names: tuple[str, ...]
    events: frozenset[str]

    def matches(self, m: MailboxFacts) -> bool:
        match self.filter:
            case "personal" | "inboxes":  # RFC 5465 §6.2, §6.3
                return m.personal
            case "subscribed":  # RFC 5465 §6.4: the set is kept up to date by the caller
                return m.subscribed
            case "mailboxes":  # RFC 5465 §6.6: exact names, no wildcards
                return m.name in self.names
            case "subtree":  # RFC 5465 §6.5: hierarchy-aware
                return any(m.name == n or m.name.startswith(n + DELIMITER) for n in self.names)
            case _:  # selected groups never match by name (RFC 5465 §3.1, §6, §6.1)
                return False


@dataclass(frozen=True, slots=True)
class Registration:
    """A whole NOTIFY SET, compiled. ``selected`` is the selected group's event set (None:
    no selected group), ``delayed`` whether it is ``selected-delayed``."""

    groups: tuple[Group, ...]
    selected: frozenset[str] | None = None
    delayed: bool = False

    def events_for(self, m: MailboxFacts) -> frozenset[str]:
        """The events requested for mailbox ``m`` by the non-selected groups (docs/notify.md,
        "Overlapping groups")."""
        for group in self.groups:
            if group.matches(m):
                return group.events
        return frozenset()

    @property
    def wants(self) -> frozenset[str]:
        """Every event any non-selected group asks for."""
        out: set[str] = set()
        for g in self.groups:
            out |= g.events
        return frozenset(out)

    @property
    def reaches_other_owners(self) -> bool:
        """Whether a group may match another user's or a shared mailbox (by id routing)."""
        return any(
            g.filter in ("subscribed", "subtree", "mailboxes") and g.events for g in self.groups
        )


def compile_groups(
    groups: Iterable[tuple[str, tuple[str, ...], tuple[str, ...] | None]],
) -> Registration:
    """(filter, names, events or None) triples -> a `Registration`."""
    compiled: list[Group] = []
    selected: frozenset[str] | None = None
    delayed = False
    for filt, names, events in groups:
        evs = frozenset(events or ())
        if filt in SELECTED_FILTERS:
            selected, delayed = evs, filt == "selected-delayed"
        else:
            compiled.append(Group(filt, names, evs))
    return Registration(tuple(compiled), selected, delayed)


def parent_name(name: str) -> str | None:
    """The direct parent of a hierarchical name (RFC 5465 §5.4), None at the top."""
    head, sep, _ = name.rpartition(DELIMITER)
    return head if sep and head else None


def has_children(name: str, names: Iterable[str]) -> bool:
    prefix = name + DELIMITER
    return any(n.startswith(prefix) for n in names)
