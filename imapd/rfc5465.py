"""IMAP NOTIFY (RFC 5465): one session's registration and the rendering of changes into
responses, pure. Not to be confused with the top-level `notify` package, which is the bus and
the RFC 5423 message-store events and sinks that this module's input comes from.

The NOTIFY layers: the grammar in imapd/protocol/parser/notify.py, the filters (which
mailboxes a group names) in notify/filters.py, the command in imapd/commands/notify.py,
this registration and rendering, and the delivery while the session waits in
imapd/listening.py.

Owns: the compiled registration (notify/filters.py), the NOTIFY subscription to the bus
(separate from the selected mailbox's, so its overflow ends NOTIFY, not the session), and
the few facts kept current from the feed itself so that rendering a change needs no query:
the names the user can list (for ``\\HasChildren`` and ``\\NonExistent``), the user's
subscriptions, and the rights on other users' and shared mailboxes being watched. `render`
is pure over that state: a Change in, responses out (STATUS from ``Change.counts``, LIST
from the names, METADATA from the entry names). What needs the store (rights re-checks after
an AclChanged, FETCH items beyond the flags) is left to imapd/listening.py.

Message events of the selected mailbox are not rendered here: they go through the
SelectedView (RFC 5465 §6.1), which the session flushes at the moments the selected group allows.
Must not import asyncio or the store implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imapd.protocol.responses import Atom, MailboxName, Response, Untagged, UntaggedStatus, Value
from imapd.replies import entry_value, list_response, oldname_response
from notify.bus import Subscription
from notify.filters import MailboxFacts, Registration, has_children, parent_name
from store.acl import ALL as ALL_RIGHTS
from store.changes import (
    AclChanged,
    Change,
    Counts,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRef,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
)
from store.namespace import SHARED_OWNER, is_personal, visible_name

OVERFLOW = UntaggedStatus("OK", "Too many notifications; NOTIFY NONE now", "NOTIFICATIONOVERFLOW")


@dataclass(slots=True)
class Foreign:
    """A mailbox of another owner (or shared) the user may list and a group names."""

    owner: str
    local: str  # the owner's name for it
    name: str  # the viewer's name for it
    rights: str


@dataclass(slots=True)
class NotifyState:
    viewer: str = ""
    registration: Registration | None = None
    sub: Subscription | None = None
    status: bool = False
    #: Every name the user can list -> selectable (False: a \\Noselect placeholder).
    names: dict[str, bool] = field(default_factory=dict)
    #: The RFC 6154 attributes of those names that have any (set at CREATE, kept by RENAME):
    #: every LIST this session pushes for a name shows them alike.
    special_use: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)
    foreign: dict[int, Foreign] = field(default_factory=dict)
    #: Mailboxes (owner, local name, id) whose rights must be read again (AclChanged).
    recheck: set[tuple[str, str, int]] = field(default_factory=set)
    #: Names reported with \\NoAccess, to report again when access comes back (RFC 5465 §5.9).
    no_access: set[str] = field(default_factory=set)
    #: The user's rights on every other owner's mailbox they have any right on, by (owner,
    #: owner's name): a mailbox created there inherits its parent's ACL (RFC 4314 §4, as
    #: the store does), so its rights are its direct parent's, known without a query.
    rights: dict[tuple[str, str], str] = field(default_factory=dict)
    admin: bool = False
    #: Set when `foreign` grew from the feed: the subscription must watch the new ids.
    rewatch: bool = False

    @property
    def active(self) -> bool:
        return self.registration is not None

    @property
    def selected_push(self) -> bool:
        """The selected group asks for message events (pushed while no command runs)."""
        r = self.registration
        return r is not None and bool(r.selected)

    def stop(self) -> None:
        """NOTIFY NONE, an overflow, or the end of the connection."""
        if self.sub is not None:
            self.sub.close()
            self.sub = None
        self.registration = None
        self.names.clear()
        self.special_use.clear()
        self.subscribed.clear()
        self.foreign.clear()
        self.recheck.clear()
        self.no_access.clear()
        self.rights.clear()

    # --- facts ---------------------------------------------------------------------------
    def facts(self, owner: str, name: str) -> MailboxFacts:
        return MailboxFacts(owner, name, owner == self.viewer, name in self.subscribed)

    def _rights(self, ref: MailboxRef) -> str | None:
        """The user's rights on ``ref``: all on their own; None when not watched."""
        if ref.owner == self.viewer:
            return ALL_RIGHTS
        f = self.foreign.get(ref.id)
        return f.rights if f is not None else None

    def _name(self, ref: MailboxRef) -> str:
        return visible_name(self.viewer, ref.owner, ref.name)

    def events(self, ref: MailboxRef) -> frozenset[str]:
        assert self.registration is not None
        rights = self._rights(ref)
        if rights is None or "l" not in rights:  # RFC 5465 §3.1, §5: nothing without l
            return frozenset()
        return self.registration.events_for(self.facts(ref.owner, self._name(ref)))

    def list_attrs(self, name: str) -> tuple[str, ...]:
        """As `mailbox_attributes` orders them: special uses (RFC 6154), children, \\Subscribed,
        then \\NonExistent when the name is not a mailbox the user can list (§5.4; RFC 5258 §3)."""
        attrs: list[str] = list(self.special_use.get(name, ()))
        attrs.append("\\HasChildren" if has_children(name, self.names) else "\\HasNoChildren")
        if name in self.subscribed:
            attrs.append("\\Subscribed")
        if not self.names.get(name, False):
            attrs.append("\\NonExistent")
        return tuple(attrs)

    # --- rendering -----------------------------------------------------------------------
    def render(
        self, change: Change, *, session: str, selected: int | None, condstore: bool
    ) -> list[Response]:
        """Apply ``change`` to the kept facts and return what the client is told of it.
        The session's own changes update the facts but are not echoed (RFC 5465 §5;
        docs/notify.md "A session's own changes")."""
        if self.registration is None:
            return []
        own = change.origin.session == session
        match change:
            case MessagesAdded() | MessagesExpunged() | FlagsChanged():
                if own or change.mailbox.id == selected:  # RFC 5465 §3.1, §6: the selected group's
                    return []
                return self._message_event(change, condstore)
            case MailboxCreated():
                name = self._name(change.mailbox)
                if (
                    change.mailbox.owner != self.viewer
                    and change.mailbox.id not in self.foreign
                    and not self._came_into_view(change.mailbox, name)
                ):
                    return []
                self.names[name] = True
                if change.special_use:
                    self.special_use[name] = change.special_use
                if own:
                    return []
                out = self._name_event(change.mailbox, name)
                rights = self._rights(change.mailbox) or ""
                if "r" in rights and "FlagChange" in self.events(change.mailbox):
                    # RFC 5465 §5.1: a watched name that comes back (DELETE, then CREATE) has a new
                    # UIDVALIDITY; with FlagChange the client is told by a STATUS.
                    uidvalidity: tuple[Value, ...] = (
                        Atom("UIDVALIDITY"),
                        change.mailbox.uidvalidity,
                    )
                    out.append(Untagged((Atom("STATUS"), MailboxName(name), uidvalidity)))
                return out
            case MailboxDeleted():
                name = self._name(change.mailbox)
                if change.mailbox.owner != self.viewer and change.mailbox.id not in self.foreign:
                    return []
                self.foreign.pop(change.mailbox.id, None)
                self.special_use.pop(name, None)
                if has_children(name, self.names):
                    self.names[name] = False  # a \\Noselect placeholder (RFC 3501 §6.3.4)
                else:
                    self.names.pop(name, None)
                if own:
                    return []
                return self._name_event(change.mailbox, name)
            case MailboxRenamed():
                return self._renamed(change, own)
            case SubscriptionChanged():
                if change.user != self.viewer:
                    return []
                # The owner matters only for `personal`.
                owner = self.viewer if is_personal(change.name) else ""
                before = self.registration.events_for(self.facts(owner, change.name))
                if change.subscribed:
                    self.subscribed.add(change.name)
                else:
                    self.subscribed.discard(change.name)
                if own:
                    return []
                # A `subscribed` group names the mailbox before an UNSUBSCRIBE, not after:
                # that change is about a mailbox it watched, and is told (RFC 5465 §5.5).
                after = self.registration.events_for(self.facts(owner, change.name))
                if "SubscriptionChange" not in before | after:
                    return []
                return [list_response(self.list_attrs(change.name), change.name)]  # RFC 5465 §5.5
            case MetadataChanged():
                if own:
                    return []
                return self._metadata(change)
            case AclChanged():
                if change.mailbox.owner != self.viewer:
                    ref = change.mailbox
                    self.recheck.add((ref.owner, ref.name, ref.id))
                return []
            case _:
                return []

    def _came_into_view(self, ref: MailboxRef, name: str) -> bool:
        """Another owner's mailbox was created (RFC 5465 §5.4): its rights are its direct
        parent's (the ACL it inherits; none without a parent), every right for an admin on
        a shared one. Watched from now on when the user may list it and a group names it."""
        assert self.registration is not None
        key = (ref.owner, ref.name)
        if self.admin and ref.owner == SHARED_OWNER:
            rights = ALL_RIGHTS
        else:
            parent = parent_name(ref.name)
            inherited = self.rights.get((ref.owner, parent), "") if parent else ""
            rights = "".join(r for r in ALL_RIGHTS if r in inherited + self.rights.get(key, ""))
        if not rights:
            return False
        self.rights[key] = rights
        if "l" not in rights:
            return False
        self.names[name] = True
        if not self.registration.events_for(self.facts(ref.owner, name)):
            return False
        self.foreign[ref.id] = Foreign(ref.owner, ref.name, name, rights)
        self.rewatch = True
        return True

    def _message_event(
        self, change: MessagesAdded | MessagesExpunged | FlagsChanged, condstore: bool
    ) -> list[Response]:
        ref = change.mailbox
        rights = self._rights(ref)
        if rights is None or "l" not in rights or "r" not in rights:  # RFC 5465 §5
            return []
        events = self.events(ref)
        counts = change.counts
        name = self._name(ref)
        match change:
            case MessagesAdded() | MessagesExpunged():
                event = "MessageNew" if isinstance(change, MessagesAdded) else "MessageExpunge"
                if event not in events:
                    return []
                # RFC 5465 §5.2, §5.3; docs/notify.md "HIGHESTMODSEQ in pushed STATUS"
                return [status_response(name, ref, counts, STATUS_NEW, condstore)]
            case FlagsChanged():
                if "FlagChange" not in events:
                    return []
                seen = any("\\Seen" in (*c.added, *c.removed) for c in change.changes)
                items = ("UIDVALIDITY",) + (("UNSEEN",) if seen else ())
                if not condstore and not seen:
                    return []  # RFC 5465 §5.1
                return [status_response(name, ref, counts, items, condstore)]  # RFC 5465 §5.1

    def _name_event(self, ref: MailboxRef, name: str) -> list[Response]:
        """RFC 5465 §5.4, docs/notify.md "The parent's LIST": a LIST for the name and one for
        its direct parent."""
        assert self.registration is not None
        out: list[Response] = []
        if "MailboxName" in self.registration.events_for(self.facts(ref.owner, name)):
            out.append(list_response(self.list_attrs(name), name))
        parent = parent_name(name)
        if (
            parent is not None
            and (ref.owner == self.viewer or parent in self.names)
            and "MailboxName" in self.registration.events_for(self.facts(ref.owner, parent))
        ):
            out.append(list_response(self.list_attrs(parent), parent))
        return out

    def _renamed(self, change: MailboxRenamed, own: bool) -> list[Response]:
        """RFC 5465 §5.4: one LIST with OLDNAME for the named mailbox, none for its children.
        RFC 5465 §5.4: renaming INBOX leaves a new INBOX, about which nothing is said."""
        assert self.registration is not None
        first_old, first_new = change.renames[0]
        if first_old.owner != self.viewer:
            for old, new in change.renames:  # the ACL moves with the mailbox
                moved = self.rights.pop((old.owner, old.name), None)
                if moved is not None:
                    self.rights[(new.owner, new.name)] = moved
        watched = (
            first_old.owner == self.viewer
            or first_old.id in self.foreign
            or self._renamed_into_view(change)
        )
        for old, new in change.renames:
            oname, nname = self._name(old), self._name(new)
            selectable = self.names.pop(oname, None)
            if selectable is not None or old.owner == self.viewer:
                self.names[nname] = True if selectable is None else selectable
            self.special_use.pop(oname, None)
            if new.special_use:
                self.special_use[nname] = new.special_use
            f = self.foreign.get(old.id)
            if f is not None:
                f.name, f.local = nname, new.name
        if first_old.name == "INBOX" and first_old.owner == self.viewer:
            self.names["INBOX"] = True
        if own or not watched:
            return []
        old_name, new_name = self._name(first_old), self._name(first_new)
        before = self.registration.events_for(self.facts(first_old.owner, old_name))
        after = self.registration.events_for(self.facts(first_new.owner, new_name))
        if "MailboxName" not in before | after:
            return []
        attrs = self.list_attrs(new_name)
        return [oldname_response(new_name, old_name, attrs)]

    def _renamed_into_view(self, change: MailboxRenamed) -> bool:
        """RFC 5465 §5.4: another owner's mailbox the user may list was renamed to a name a group
        names: watched from now on (its children too where a group names them)."""
        assert self.registration is not None
        found = False
        for old, new in change.renames:
            rights = self.rights.get((new.owner, new.name), "")
            if "l" not in rights:
                continue
            oname, nname = self._name(old), self._name(new)
            self.names.setdefault(oname, True)
            if self.registration.events_for(self.facts(new.owner, nname)):
                self.foreign[old.id] = Foreign(new.owner, old.name, oname, rights)
                self.rewatch = True
                found = True
        return found

    def _metadata(self, change: MetadataChanged) -> list[Response]:
        """RFC 5465 §5.6, §5.7; RFC 5464 §4.4, §4.4.2: entry names only, deleted ones included."""
        assert self.registration is not None
        entries: tuple[Value, ...] = tuple(entry_value(e) for e in change.entries)
        if change.mailbox is None:
            # The user's own /private entries, and everyone's /shared ones (RFC 5465 §5.7).
            if change.user not in (self.viewer, SHARED_OWNER):
                return []
            if "ServerMetadataChange" not in self.registration.wants:
                return []
            return [Untagged((Atom("METADATA"), MailboxName(""), *entries))]
        if "MailboxMetadataChange" not in self.events(change.mailbox):
            return []
        name = MailboxName(self._name(change.mailbox))
        return [Untagged((Atom("METADATA"), name, *entries))]


#: STATUS items for MessageNew and MessageExpunge elsewhere (RFC 5465 §5.2, §5.3; UNSEEN: §5.1).
STATUS_NEW = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def status_response(
    name: str, ref: MailboxRef, counts: Counts, items: tuple[str, ...], condstore: bool
) -> Untagged:
    """``* STATUS name (...)`` from a change's counts; HIGHESTMODSEQ once the client is
    CONDSTORE-aware (RFC 5465 §5.1, §5.2; docs/notify.md "HIGHESTMODSEQ in pushed STATUS")."""
    values: dict[str, int] = {
        "MESSAGES": counts.messages,
        "UIDNEXT": counts.uidnext,
        "UIDVALIDITY": ref.uidvalidity,
        "UNSEEN": counts.unseen,
        "HIGHESTMODSEQ": counts.highestmodseq,
    }
    if condstore:
        items = (*items, "HIGHESTMODSEQ")
    out: list[Value] = []
    for item in items:
        out += [Atom(item), values[item]]
    return Untagged((Atom("STATUS"), MailboxName(name), tuple(out)))
