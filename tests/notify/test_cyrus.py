"""Change -> events -> Cyrus JSON, pure, against the example files of the specification.

Each example is rebuilt from a Change holding the facts it shows (servername
imap.example.org, user john@example.org, the examples' UIDVALIDITYs, clock at +01:00, the
example's pid and session id) and must come out equal, value for value; key order is
checked against Cyrus's wire order and against the real 3.6.1 captures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from notify import cyrus
from notify.cyrus import Format, Renderer, event_fields
from notify.events import DEFAULT_POLICY, EventType, Policy, events_for, flag_union
from store.changes import (
    ApplePushRegistered,
    Change,
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRef,
    MailboxRenamed,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    Origin,
    SessionEvent,
    SubscriptionChanged,
    from_json,
    to_json,
)
from tests.reference import REFERENCE

EXAMPLES = REFERENCE / "cyrus-events"
OBSERVED = REFERENCE / "observed-cyrus-3.6.1-events.jsonl"
CET = dt.timezone(dt.timedelta(hours=1))
JOHN = "john@example.org"
SERVER = "imap.example.org"
MID = "<4d9618acd0aea6b33683766358351459@example.org>"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def at(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def origin(ex: dict[str, Any], client: str | None = None) -> Origin:
    return Origin(
        session=ex["vnd.cmu.sessionId"], user=ex["user"], service=ex["service"], client=client
    )


def box(name: str, uidvalidity: int, special_use: tuple[str, ...] = ()) -> MailboxRef:
    return MailboxRef(1, JOHN, name, uidvalidity, special_use)


def render(
    ex: dict[str, Any], policy: Policy = DEFAULT_POLICY, tz: dt.tzinfo = CET, **fmt: Any
) -> list[dict[str, Any]]:
    change = ex.pop("_change")
    # Through the change_log form, as the sink reads it.
    change = from_json(type(change).__name__, change.seq, to_json(change))
    format_ = Format(servername=SERVER, **fmt)
    return [
        event_fields(e, format_, pid=ex["pid"], tz=tz, **ex.pop("_kw", {}))
        for e in events_for(change, policy)
    ]


def assert_wire_order(fields: dict[str, Any]) -> None:
    ranks = [cyrus.KEY_ORDER.index(k) for k in fields]
    assert ranks == sorted(ranks), list(fields)


def check(name: str, change: Change, **kw: Any) -> dict[str, Any]:
    ex = example(name)
    ex["_change"] = change
    [out] = render(ex, **kw)
    assert out == ex
    assert_wire_order(out)
    return out


def flags_change(
    name: str, kind_flags: tuple[tuple[str, ...], tuple[str, ...]], flags: tuple[str, ...]
) -> FlagsChanged:
    ex = example(name)
    added, removed = kind_flags
    return FlagsChanged(
        5,
        at(ex["timestamp"]),
        origin(ex),
        box("INBOX", 1424683682),
        Counts(ex["messages"], ex["vnd.cmu.unseenMessages"], ex["uidnext"], ex["modseq"], 100),
        (FlagChange(int(ex["uidset"]), ex["modseq"], flags, added, removed, MID),),
    )


def test_flags_set() -> None:
    check("FlagsSet", flags_change("FlagsSet", (("\\Flagged",), ()), ("\\Flagged", "\\Seen")))


def test_flags_clear() -> None:
    check("FlagsClear", flags_change("FlagsClear", ((), ("\\Flagged",)), ("\\Seen",)))


def test_message_read() -> None:
    check("MessageRead", flags_change("MessageRead", (("\\Seen",), ()), ("\\Seen",)))


def test_message_read_from_fetch() -> None:
    change = flags_change("MessageRead", (("\\Seen",), ()), ("\\Seen",))
    check("MessageRead", dataclasses.replace(change, kind="fetch"))


def test_message_trash() -> None:
    check(
        "MessageTrash", flags_change("MessageTrash", (("\\Deleted",), ()), ("\\Deleted", "\\Seen"))
    )


def test_message_expunge() -> None:
    ex = example("MessageExpunge")
    fact = MessageFacts(4, 52, ("\\Deleted",), 100, at(ex["timestamp"]), MID)
    check(
        "MessageExpunge",
        MessagesExpunged(
            9,
            at(ex["timestamp"]),
            origin(ex),
            box("INBOX", 1424683682),
            Counts(0, 0, 5, 53, 0),
            (fact,),
            53,
        ),
    )


def test_message_expire_is_expunge_shaped_without_user() -> None:
    ex = example("MessageExpunge")
    fact = MessageFacts(4, 52, (), 100, at(ex["timestamp"]), MID)
    change = MessagesExpunged(
        9,
        at(ex["timestamp"]),
        Origin(service="expire"),
        box("INBOX", 1424683682),
        Counts(0, 0, 5, 53, 0),
        (fact,),
        53,
        "expire",
    )
    [event] = events_for(change)
    out = event_fields(event, Format(servername=SERVER), pid=1, tz=CET)
    assert out["event"] == "MessageExpire"
    assert out["user"] == ""
    assert set(out) == set(ex) - {"vnd.cmu.sessionId"}  # no session made it


def copy_change(name: str, kind: str) -> MessagesAdded:
    ex = example(name)
    old = "Sent" if kind == "copy" else "INBOX"
    old_validity = 1424683683 if kind == "copy" else 1424683682
    fact = MessageFacts(int(ex["uidset"]), ex["modseq"], (), 10, at(ex["timestamp"]), MID)
    return MessagesAdded(
        3,
        at(ex["timestamp"]),
        origin(ex),
        box("Archive", 1424683684),
        Counts(ex["messages"], ex["vnd.cmu.unseenMessages"], ex["uidnext"], ex["modseq"], 10),
        (fact,),
        kind,
        box(old, old_validity),
        (int(ex["vnd.cmu.oldUidset"]),),
    )


def test_message_copy() -> None:
    check("MessageCopy", copy_change("MessageCopy", "copy"))


def test_message_move() -> None:
    check("MessageMove", copy_change("MessageMove", "move"))


APPEND_ENVELOPE = example("MessageAppend")["vnd.cmu.envelope"]
APPEND_BODY = example("MessageAppend")["bodyStructure"]
FAKE = Renderer(lambda s: APPEND_ENVELOPE, lambda s: APPEND_BODY)


def test_message_append() -> None:
    ex = example("MessageAppend")
    fact = MessageFacts(5, 12, (), 2992, at(ex["timestamp"]), None, structure="[]")
    check(
        "MessageAppend",
        MessagesAdded(
            2,
            at(ex["timestamp"]),
            origin(ex),
            box("Calendar", 1424683684),
            Counts(3, 3, 6, 12, 5000),
            (fact,),
        ),
        renderer=FAKE,
    )


NEW_RAW = example("MessageNew")["messageContent"]["6"].encode()


def test_message_new_with_content_and_headers() -> None:
    ex = example("MessageNew")
    ex["_kw"] = {"content": {6: NEW_RAW}}
    fact = MessageFacts(6, 20, (), 976, at(ex["timestamp"]), ex["vnd.cmu.midset"][0])
    ex["_change"] = MessagesAdded(
        2,
        at(ex["timestamp"]),
        Origin(ex["vnd.cmu.sessionId"], None, "lmtpunix"),
        box("INBOX", 1411487714),
        Counts(6, 3, 7, 20, 5000),
        (fact,),
        "deliver",
    )
    extras = {*cyrus.DEFAULT_EXTRA_PARAMS, "messageContent", "messageHeaders"}
    cest = dt.timezone(dt.timedelta(hours=2))
    [out] = render(ex, tz=cest, extra_params=frozenset(extras))
    assert out == ex
    assert list(out)[-1] == "messageContent"  # last, so a consumer can cut it off


def test_message_new_default_has_no_content() -> None:
    ex = example("MessageNew")
    fact = MessageFacts(6, 20, (), 976, at(ex["timestamp"]), ex["vnd.cmu.midset"][0])
    change = MessagesAdded(
        2,
        at(ex["timestamp"]),
        Origin("s", None, "lmtp"),
        box("INBOX", 1411487714),
        Counts(6, 3, 7, 20, 5000),
        (fact,),
        "deliver",
    )
    [event] = events_for(change)
    out = event_fields(event, Format(servername=SERVER), pid=1, content={6: NEW_RAW})
    assert set(out) == set(ex) - {"messageContent", "messageHeaders"}
    uri = out["uri"]
    assert isinstance(uri, str) and uri.endswith(";UIDVALIDITY=1411487714/;UID=6")
    assert out["user"] == JOHN  # the recipient
    assert out["uidset"] == "6"


def test_mailbox_create() -> None:
    ex = example("MailboxCreate")
    check(
        "MailboxCreate",
        MailboxCreated(1, at(ex["timestamp"]), origin(ex), box("Testfolder", 1424690388)),
    )


def test_mailbox_delete() -> None:
    ex = example("MailboxDelete")
    check(
        "MailboxDelete",
        MailboxDeleted(
            1,
            at(ex["timestamp"]),
            origin(ex),
            box("Testfolder_renamed", 1424699807),
            Counts(0, 0, 1, 1, 0),
        ),
    )


def test_mailbox_rename_one_event_for_the_named_mailbox() -> None:
    ex = example("MailboxRename")
    old, new = box("Testfolder", 1424690388), box("Testfolder_renamed", 1424699807)
    child_old = box("Testfolder/Sub", 1)
    child_new = box("Testfolder_renamed/Sub", 1)
    check(
        "MailboxRename",
        MailboxRenamed(1, at(ex["timestamp"]), origin(ex), ((old, new), (child_old, child_new))),
    )


def test_subscribe_and_unsubscribe() -> None:
    ex = example("MailboxSubscribe")
    check(
        "MailboxSubscribe",
        SubscriptionChanged(1, at(ex["timestamp"]), origin(ex), JOHN, "Archive", True),
    )
    ex = example("MailboxUnSubscribe")
    check(
        "MailboxUnSubscribe",
        SubscriptionChanged(1, at(ex["timestamp"]), origin(ex), JOHN, "Testfolder_renamed", False),
    )


@pytest.mark.parametrize("name", ["Login", "Logout"])
def test_login_logout(name: str) -> None:
    ex = example(name)
    check(
        name,
        SessionEvent(
            1, at(ex["timestamp"]), origin(ex, "[::1]:46461"), JOHN, name.lower(), "[::1]:143"
        ),
    )


def test_apple_push_service() -> None:
    change = ApplePushRegistered(
        1,
        at("2015-02-23T14:57:59.736+01:00"),
        Origin(),
        JOHN,
        2,
        "acct",
        "tok",
        "com.apple.mobilemail",
        ("INBOX", "Sent"),
    )
    [event] = events_for(change)
    out = event_fields(event, Format(servername=SERVER), pid=1)
    assert list(out) == list(example("ApplePushService"))
    assert out == {
        "event": "ApplePushService",
        "user": JOHN,
        "apsVersion": 2,
        "apsAccountId": "acct",
        "apsDeviceToken": "tok",
        "apsSubtopic": "com.apple.mobilemail",
        "mailboxes": ["INBOX", "Sent"],
    }


def test_metadata_has_no_event() -> None:
    change = MetadataChanged(
        1, at("2015-02-23T14:57:59.736+01:00"), Origin(), JOHN, None, ("/private/comment",)
    )
    assert events_for(change) == []


# --- STORE splitting and ordering (docs/events.md "Order") ----------------------------------------
def store(changes: tuple[FlagChange, ...], kind: str = "store") -> FlagsChanged:
    return FlagsChanged(
        1,
        at("2015-02-23T14:50:21.858+01:00"),
        Origin("s", "u"),
        box("INBOX", 7),
        Counts(5, 1, 6, 9, 0),
        changes,
        kind,
    )


def names(change: FlagsChanged, policy: Policy = DEFAULT_POLICY) -> list[tuple[str, str, str]]:
    out = []
    for e in events_for(change, policy):
        f = event_fields(e, Format(), pid=1)
        out.append((str(f["event"]), str(f.get("flagNames", "")), str(f["uidset"])))
    return out


def test_store_split_trash_read_flagsset() -> None:
    added = ("\\Deleted", "\\Seen", "\\Flagged", "$X")
    change = store((FlagChange(4, 9, added, added, ()),))
    assert names(change) == [
        ("MessageTrash", "", "4"),
        ("MessageRead", "", "4"),
        ("FlagsSet", "\\Flagged $X", "4"),
    ]


def test_store_deleted_alone_is_only_trash() -> None:
    change = store((FlagChange(4, 9, ("\\Deleted",), ("\\Deleted",), ()),))
    assert names(change) == [("MessageTrash", "", "4")]


def test_clear_with_seen_goes_first() -> None:
    change = store((FlagChange(3, 9, ("\\Answered",), ("\\Answered",), ("\\Seen", "$Foo")),))
    assert names(change) == [("FlagsClear", "\\Seen $Foo", "3"), ("FlagsSet", "\\Answered", "3")]


def test_set_then_clear_without_seen() -> None:
    change = store((FlagChange(3, 9, ("\\Answered",), ("\\Answered",), ("$Foo",)),))
    assert names(change) == [("FlagsSet", "\\Answered", "3"), ("FlagsClear", "$Foo", "3")]


def test_read_shares_the_whole_added_uidset() -> None:
    change = store(
        (
            FlagChange(1, 9, ("\\Seen", "$A"), ("\\Seen", "$A"), ()),
            FlagChange(2, 9, ("\\Seen", "$A"), ("$A",), ()),
        )
    )
    assert names(change) == [("MessageRead", "", "1:2"), ("FlagsSet", "$A", "1:2")]


def test_flag_union_first_seen_order() -> None:
    assert flag_union([("$Foo",), ("\\Answered", "$Foo")], frozenset()) == ["$Foo", "\\Answered"]
    assert flag_union([("$b", "\\Seen", "\\Deleted")], frozenset()) == ["\\Deleted", "\\Seen", "$b"]


def test_excluded_flags_never_make_events() -> None:
    policy = Policy.build(Policy().groups, ["$Junk", "\\Seen"], ())
    change = store((FlagChange(1, 9, ("\\Seen", "$Junk"), ("\\Seen", "$Junk"), ()),))
    assert names(change, policy) == []  # and no FlagsSet without flagNames (Cyrus bug)
    change = store((FlagChange(1, 9, ("\\Seen", "$Junk", "$A"), ("\\Seen", "$Junk", "$A"), ()),))
    assert names(change, policy) == [("FlagsSet", "$A", "1")]


def test_modseq_only_for_one_message() -> None:
    two = store((FlagChange(2, 9, ("$A",), ("$A",), ()), FlagChange(3, 9, ("$A",), ("$A",), ())))
    [event] = events_for(two)
    assert "modseq" not in event_fields(event, Format(), pid=1)  # Cyrus bug §3.6 not copied


def test_excluded_special_use_and_groups() -> None:
    junk = MailboxRef(1, "u", "Junk", 5, ("\\Junk",))
    fact = MessageFacts(1, 2, (), 3, at("2015-02-23T14:50:21.858+01:00"))
    change = MessagesAdded(1, fact.internaldate, Origin(), junk, Counts(1, 1, 2, 2, 3), (fact,))
    assert events_for(change) == []
    created = MailboxCreated(1, fact.internaldate, Origin(), junk, ("\\Junk",))
    assert [e.type for e in events_for(created)] == [EventType.MailboxCreate]
    assert events_for(created, Policy.build(["message"], (), ())) == []
    inbox_only = Policy.build(Policy().groups, (), ["ALL"])
    archive = MailboxRef(1, "u", "Archive", 5)
    assert (
        events_for(
            MessagesAdded(1, fact.internaldate, Origin(), archive, Counts(1, 1, 2, 2, 3), (fact,)),
            inbox_only,
        )
        == []
    )


# --- value formats -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uids", "text"),
    [
        ([4], "4"),
        ([2, 3], "2:3"),
        ([5, 2], "2,5"),
        ([1, 2, 3, 4], "1:4"),
        ([1, 3, 4, 9], "1,3:4,9"),
    ],
)
def test_uidset(uids: list[int], text: str) -> None:
    assert cyrus.uidset(uids) == text


def test_urls() -> None:
    ref = MailboxRef(1, JOHN, "Entwürfe/a b;c", 3)
    assert cyrus.mailbox_url(SERVER, ref, 4) == (
        "imap://john@example.org@imap.example.org/Entw%C3%BCrfe/a%20b%3Bc;UIDVALIDITY=3/;UID=4"
    )
    assert cyrus.imap_url(SERVER) == "imap://imap.example.org"
    assert (
        cyrus.imap_url(SERVER, JOHN, "Archive")
        == "imap://john@example.org@imap.example.org/Archive"
    )


def test_timestamp() -> None:
    when = dt.datetime(2026, 11, 23, 23, 52, 26, 699999, tzinfo=dt.UTC)
    assert cyrus.timestamp(when, dt.UTC) == "2026-11-23T23:52:26.699Z"
    assert cyrus.timestamp(when, CET) == "2026-11-24T00:52:26.699+01:00"
    west = dt.timezone(-dt.timedelta(hours=3, minutes=30))
    assert cyrus.timestamp(when, west) == "2026-11-23T20:22:26.699-03:30"


def test_session_id_shape() -> None:
    first = cyrus.new_session_id("imap.example.org", now=1424699256.5, pid=7629)
    second = cyrus.new_session_id("imap.example.org", now=1424699256.9, pid=7629)
    assert first.startswith("imap.example.org-7629-1424699256-1-")
    assert second.startswith("imap.example.org-7629-1424699256-2-")
    assert 0 <= int(first.rsplit("-", 1)[1]) < 2**64


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("standard", 0, b"H: v\r\n\r\nbody text"),
        ("standard", 5, None),
        ("message", 4, b"H: v"),
        ("header", 3, b"H: "),
        ("body", 4, b"body"),
        ("headerbody", 4, b"H: v\r\n\r\nbody"),
    ],
)
def test_content_inclusion(mode: str, size: int, expected: bytes | None) -> None:
    assert cyrus.content_excerpt(b"H: v\r\n\r\nbody text", mode, size) == expected


# --- datagram and notifyd -------------------------------------------------------------------
def test_datagram_layout() -> None:
    text = '{"event":"Login"}'
    data = cyrus.datagram("log", text)
    assert data == b"log\0EVENT\0\0\0\0" + b"0\0" + text.encode() + b"\0"
    assert len(data) == len(text) + 16  # docs/events.md: 331 bytes of JSON -> 347
    req = cyrus.parse_datagram(data)
    assert (req.method, req.klass, req.options, req.message) == ("log", "EVENT", (), text)
    assert cyrus.log_line(req) == 'EVENT, , , ,  "{"event":"Login"}"'


def test_observed_datagrams_parse() -> None:
    for line in OBSERVED.read_text().splitlines():
        row = json.loads(line)
        fields = [f.encode() for f in row["datagram_fields_before_json"]]
        data = b"\0".join([*fields, row["json_text"].encode(), b""])
        assert len(data) == row["datagram_len"]
        assert cyrus.parse_datagram(data).message == row["json_text"]


def test_key_order_agrees_with_real_cyrus() -> None:
    for line in OBSERVED.read_text().splitlines():
        keys = [k for k in json.loads(json.loads(line)["json_text"]) if k in cyrus.KEY_ORDER]
        ranks = [cyrus.KEY_ORDER.index(k) for k in keys]
        assert ranks == sorted(ranks), keys


def test_fit_sheds_content_first() -> None:
    fields: dict[str, object] = {
        "event": "MessageAppend",
        "user": "u",
        "messageHeaders": {"1": {}},
        "messageContent": {"1": "x" * 500},
    }
    fitted = cyrus.fit(fields, "log", 200)
    assert fitted is not None
    data, shed = fitted
    assert shed == ["messageContent"]
    assert b"messageContent" not in data
    assert cyrus.fit({"event": "x" * 500}, "log", 200) is None


def test_compact_json_raw_utf8() -> None:
    assert cyrus.to_json({"event": "FlagsSet", "flagNames": "\\Seen", "uri": "a/ü"}) == (
        '{"event":"FlagsSet","flagNames":"\\\\Seen","uri":"a/ü"}'
    )
