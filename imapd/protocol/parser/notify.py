"""The grammar of NOTIFY (RFC 5465 §8).

Owns: event groups, mailbox filters and events, with the §5 and §6.1 rules that make a
well-formed NOTIFY a BAD (RFC 5465 §5, §6.1, §8); `NOTIFY_EVENTS`, the canonical event names.
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser.message import fetch_att
from imapd.protocol.parser.primitives import ATOM, Cursor, atom, mailbox
from imapd.protocol.values import FetchAtt

#: The events of RFC 5465 §5 by upper-cased name -> canonical name.
NOTIFY_EVENTS: Final[dict[str, str]] = {
    name.upper(): name
    for name in (
        "MessageNew",
        "MessageExpunge",
        "FlagChange",
        "AnnotationChange",
        "MailboxName",
        "SubscriptionChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
    )
}
_MESSAGE_EVENTS: Final = frozenset(
    {"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"}
)
_NOTIFY_FILTERS: Final = (
    "selected-delayed",
    "selected",
    "inboxes",
    "personal",
    "subscribed",
    "subtree",
    "mailboxes",
)


def notify(c: Cursor, t: str) -> cmd.Notify:
    """notify = "NOTIFY" SP (notify-set / notify-none)
    notify-none = "NONE"
    notify-set = "SET" [SP status-indicator] SP event-groups
    status-indicator = "STATUS"
    event-groups = event-group *(SP event-group)
    ; RFC 5465 §8, with the §5 and §6.1 rules (each a BAD): MessageNew and MessageExpunge
    ; together; FlagChange/AnnotationChange need both; at most one selected group, holding
    ; message events only; fetch-atts only after MessageNew in a selected group. The §3.1
    ; example without parentheses round the events is not the ABNF (docs/notify.md, "Event
    ; lists in parentheses")."""
    c.sp()
    if c.keyword(b"NONE"):
        return cmd.Notify(t, False, None)
    if not c.keyword(b"SET"):
        raise c.error("SET or NONE")
    c.sp()
    status = c.keyword(b"STATUS")
    if status:
        c.sp()
    groups = [event_group(c)]
    while c.try_char(b" "):
        groups.append(event_group(c))
    if sum(g.filter.startswith("selected") for g in groups) > 1:
        raise BadCommand("At most one selected or selected-delayed group", tag=c.tag)
    return cmd.Notify(t, status, tuple(groups))


def event_group(c: Cursor) -> cmd.NotifyGroup:
    """event-group = "(" filter-mailboxes SP events ")"
    filter-mailboxes = filter-mailboxes-selected / filter-mailboxes-other
    filter-mailboxes-selected = "selected" / "selected-delayed"
    filter-mailboxes-other = "inboxes" / "personal" / "subscribed" /
                             ( "subtree" SP one-or-more-mailbox ) /
                             ( "mailboxes" SP one-or-more-mailbox )
    events = ( "(" event *(SP event) ")" ) / "NONE" """
    c.char(b"(", "event group")
    c.enter()
    start = c.pos
    word = c.expect(ATOM, "mailbox filter").group().decode("ascii").lower()
    if word not in _NOTIFY_FILTERS:
        c.pos = start
        raise c.error("mailbox filter")
    c.sp()
    names: tuple[str, ...] = ()
    if word in ("subtree", "mailboxes"):
        names = one_or_more_mailbox(c)
        c.sp()
    selected = word.startswith("selected")
    events: tuple[cmd.NotifyEvent, ...] | None = None
    if not c.keyword(b"NONE"):
        c.char(b"(", "event list or NONE")
        found = [notify_event(c, selected)]
        while not c.try_char(b")"):
            c.sp()
            found.append(notify_event(c, selected))
        events = tuple(found)
        _check_events(c, events, selected)
    c.char(b")", "')' closing the event group")
    c.leave()
    return cmd.NotifyGroup(word, names, events)


def one_or_more_mailbox(c: Cursor) -> tuple[str, ...]:
    """one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")" """
    if not c.try_char(b"("):
        c.count_arg()
        return (mailbox(c),)
    names = []
    while True:
        c.count_arg()
        names.append(mailbox(c))
        if c.try_char(b")"):
            return tuple(dict.fromkeys(names))
        c.sp()


def notify_event(c: Cursor, selected: bool) -> cmd.NotifyEvent:
    """event = message-event / mailbox-event / user-event / event-ext
    message-event = ( "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")" ] )
                    / "MessageExpunge" / "FlagChange" / "AnnotationChange"
    mailbox-event = "MailboxName" / "SubscriptionChange" / "MailboxMetadataChange"
    user-event = "ServerMetadataChange"
    event-ext = atom"""
    c.count_arg()
    raw = atom(c)
    name = NOTIFY_EVENTS.get(raw.upper(), raw)
    atts: list[FetchAtt] = []
    if name == "MessageNew" and c.text[c.pos : c.pos + 2] == b" (":
        if not selected:
            raise BadCommand("MessageNew fetch attributes need a selected group", tag=c.tag)
        c.pos += 2
        atts.append(fetch_att(c))
        while not c.try_char(b")"):
            c.sp()
            atts.append(fetch_att(c))
    return cmd.NotifyEvent(name, tuple(dict.fromkeys(atts)))


def _check_events(c: Cursor, events: tuple[cmd.NotifyEvent, ...], selected: bool) -> None:
    """RFC 5465 §5 and §6.1: the pairing rules of one group, each a BAD (RFC 5465 §8)."""
    names = {e.name for e in events}
    if ("MessageNew" in names) != ("MessageExpunge" in names):
        raise BadCommand("MessageNew and MessageExpunge go together", tag=c.tag)
    if names & {"FlagChange", "AnnotationChange"} and "MessageNew" not in names:
        raise BadCommand(
            "FlagChange and AnnotationChange need MessageNew and MessageExpunge", tag=c.tag
        )
    if selected and any(n.upper() in NOTIFY_EVENTS and n not in _MESSAGE_EVENTS for n in names):
        raise BadCommand("Only message events in a selected group", tag=c.tag)
