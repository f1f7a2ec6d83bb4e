"""IMAP URLs (imapd/protocol/imapurl.py, RFC 5092 with RFC 4467's URLAUTH): properties
(serialise then parse gives the URL back; parse never fails but with BadUrl; the rump split
of RFC 4467 §6 only cuts ``:mech:token``) and rows of the RFCs' own URLs and hostile ones."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imapd.protocol import imapurl
from imapd.protocol.imapurl import BadUrl, ImapUrl, UrlAuth
from imapd.protocol.values import Section

# Names: any printable text, non-ASCII included (percent-encoded UTF-8 on the wire).
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
users = names
hosts = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?", fullmatch=True)
numbers = st.integers(1, 2**32 - 1)
sections = st.sampled_from(
    ["1", "1.2", "HEADER", "TEXT", "1.MIME", "2.3.HEADER", "HEADER.FIELDS (FROM TO)", "3.TEXT"]
)
expires = st.datetimes(  # hypothesis takes naive bounds, then adds the timezone
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
).map(lambda d: d.replace(microsecond=0))
access = st.one_of(
    st.just("authuser"),
    st.just("anonymous"),
    users.map(lambda u: "user+" + u),
    users.map(lambda u: "submit+" + u),
)
tokens = st.from_regex(r"[0-9a-f]{32,70}", fullmatch=True)
mechs = st.from_regex(r"[A-Z0-9][A-Z0-9.-]{0,10}", fullmatch=True)


@st.composite
def urlauths(draw: st.DrawFn) -> UrlAuth:
    full = draw(st.booleans())
    return UrlAuth(
        draw(access),
        draw(st.none() | expires),
        draw(mechs) if full else None,
        draw(tokens) if full else None,
    )


@st.composite
def urls(draw: st.DrawFn) -> ImapUrl:
    user = draw(st.none() | users)
    url = ImapUrl(
        host=draw(hosts),
        port=draw(st.none() | st.integers(1, 65535)),
        user=user,
        auth=draw(st.none() | st.just("*") | st.sampled_from(["GSSAPI", "PLAIN"])),
    )
    if draw(st.booleans()):
        return url
    mailbox = draw(names)
    uidvalidity = draw(st.none() | numbers)
    kind = draw(st.sampled_from(["mailbox", "search", "message"]))
    if kind == "mailbox":
        return ImapUrl(url.host, url.port, user, url.auth, mailbox, uidvalidity)
    if kind == "search":
        return ImapUrl(url.host, url.port, user, url.auth, mailbox, uidvalidity, search=draw(names))
    partial = draw(st.none() | st.tuples(st.integers(0, 2**32 - 1), st.none() | numbers))
    return ImapUrl(
        url.host,
        url.port,
        user,
        url.auth,
        mailbox,
        uidvalidity,
        uid=draw(numbers),
        section=draw(st.none() | sections),
        partial=partial,
        urlauth=draw(st.none() | urlauths()),
    )


@settings(max_examples=150, deadline=None)
@given(urls())
def test_serialize_then_parse_is_identity(url: ImapUrl) -> None:
    text = imapurl.serialize(url)
    assert text.isascii()
    assert imapurl.parse(text) == url
    assert imapurl.serialize(imapurl.parse(text)) == text


@settings(max_examples=100, deadline=None)
@given(urls())
@example(ImapUrl(host="0", user="0", mailbox="/"))  # "//": an authority unless encoded
def test_relative_form_resolves_to_the_url(url: ImapUrl) -> None:
    """RFC 4469 §3: a path (no scheme, no server) resolves against imap://user@server/."""
    if url.mailbox is None or url.user is None or url.auth is not None or url.port is not None:
        return
    relative = imapurl.serialize(url, server=False)
    assert imapurl.resolve(relative, url.user, url.host or "", None) == url


@settings(max_examples=100, deadline=None)
@given(urls())
def test_rump_split_cuts_only_mech_and_token(url: ImapUrl) -> None:
    """RFC 4467 §6: the rump is the URL minus ``:mech:token``, nothing else changed."""
    text = imapurl.serialize(url)
    auth = url.urlauth
    split = imapurl.split_rump(text)
    if auth is None or auth.mechanism is None:
        assert split is None
        return
    assert split is not None
    rump, mech, token = split
    assert text == f"{rump}:{mech}:{token}"
    assert (mech, token) == (auth.mechanism, auth.token)
    assert imapurl.parse(rump) == dataclasses.replace(
        url, urlauth=UrlAuth(auth.access, auth.expire)
    )


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=80) | st.text(alphabet="imap:/;=@%ABCDEFUIDVALIDTY0123456789.?+", max_size=80)
)
def test_parse_only_raises_badurl(text: str) -> None:
    for candidate in (text, "imap://" + text, "imap://u@h/" + text):
        try:
            url = imapurl.parse(candidate)
        except BadUrl:
            continue
        assert imapurl.parse(imapurl.serialize(url)) == url
    with contextlib.suppress(BadUrl):
        imapurl.resolve(text, "alice", "localhost", "INBOX")


# (URL text, expected fields) from RFC 5092 §9, RFC 4467 §7, RFC 4469 Appendix A, RFC 5524 §4
RFC_URLS = [
    (
        "imap://minbari.example.org/gray-council;UIDVALIDITY=385759045/;UID=20/;PARTIAL=0.1024",
        {
            "host": "minbari.example.org",
            "mailbox": "gray-council",
            "uidvalidity": 385759045,
            "uid": 20,
            "partial": (0, 1024),
        },
    ),
    (
        "imap://psicorp.example.org/~peter/%E6%97%A5%E6%9C%AC%E8%AA%9E/%E5%8F%B0%E5%8C%97",
        {"host": "psicorp.example.org", "mailbox": "~peter/日本語/台北"},
    ),
    (
        "imap://;AUTH=GSSAPI@minbari.example.org/gray-council/;uid=20/;section=1.2",
        {"auth": "GSSAPI", "mailbox": "gray-council", "uid": 20, "section": "1.2"},
    ),
    (
        "imap://;AUTH=*@minbari.example.org/gray%20council?SUBJECT%20shadows",
        {"auth": "*", "mailbox": "gray council", "search": "SUBJECT shadows"},
    ),
    (
        "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred:internal"
        ":91354a473744909de610943775f92038",
        {
            "user": "joe",
            "mailbox": "INBOX",
            "uid": 20,
            "section": "1.2",
            "urlauth": UrlAuth("submit+fred", None, "INTERNAL", "91354a473744909de610943775f92038"),
        },
    ),
    (
        "imap://michael@minbari.example.org/users.*",
        {"user": "michael", "mailbox": "users.*"},
    ),
    (
        "imap://joe@example.com/INBOX/;uid=20/;section=1.2;EXPIRE=2006-05-01T10:00:00Z"
        ";urlauth=anonymous",
        {"uid": 20, "urlauth": UrlAuth("anonymous", dt.datetime(2006, 5, 1, 10, tzinfo=dt.UTC))},
    ),
]


@pytest.mark.parametrize(("text", "fields"), RFC_URLS)
def test_rfc_urls(text: str, fields: dict[str, object]) -> None:
    url = imapurl.parse(text)
    for name, value in fields.items():
        assert getattr(url, name) == value, name
    assert imapurl.parse(imapurl.serialize(url)) == url


def test_rfc4469_relative_urls() -> None:
    """RFC 4469 Appendix A's URLs against the base imap://user@server/ (§3)."""
    url = imapurl.resolve(
        "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME", "bob", "localhost", None
    )
    assert (url.user, url.host, url.mailbox, url.uidvalidity, url.uid) == (
        "bob",
        "localhost",
        "Drafts",
        385759045,
        20,
    )
    assert url.section_spec == Section((1,), "MIME")
    url = imapurl.resolve(";UID=7/;Section=HEADER", "bob", "localhost", "Sent Items")
    assert (url.mailbox, url.uid, url.section_spec) == ("Sent Items", 7, Section((), "HEADER"))
    url = imapurl.resolve("/Drafts/;UID=3002", "bob", "localhost", None)  # RFC 8508 §4.2
    assert (url.mailbox, url.uid) == ("Drafts", 3002)


HOSTILE = [
    "",
    "imap:",
    "imap://",
    "http://host/INBOX/;UID=1",
    "imap://host/INBOX/;UID=",
    "imap://host/INBOX/;UID=0",
    "imap://host/INBOX/;UID=01x",
    "imap://host/INBOX/;UID=4294967296",
    "imap://host/INBOX;UIDVALIDITY=0/;UID=1",
    "imap://host/INBOX/;UID=1/;SECTION=",
    "imap://host/INBOX/;UID=1/;SECTION=1..2",
    "imap://host/INBOX/;UID=1/;SECTION=HEADER.FIELDS",
    "imap://host/INBOX/;UID=1/;SECTION=0",
    "imap://host/INBOX/;UID=1/;PARTIAL=1.0",
    "imap://host/INBOX/;UID=1/;PARTIAL=.5",
    "imap://host/IN%ZZBOX",
    "imap://host/IN%0ABOX",
    "imap://host/%C3",
    "imap://host/IN BOX",
    "imap://host/INBOX\u00e9",
    "imap://host:0/INBOX",
    "imap://host:99999/INBOX",
    "imap://us er@host/INBOX",
    "imap://@host/INBOX",
    "imap://host/INBOX/;UID=1;URLAUTH=",
    "imap://host/INBOX/;UID=1;URLAUTH=someone",
    "imap://host/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:abc",
    "imap://host/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL",
    "imap://host/INBOX/;UID=1;URLAUTH=anonymous:INTER NAL:" + "0" * 32,
    "imap://host/INBOX/;UID=1;EXPIRE=tomorrow;URLAUTH=anonymous",
    "imap://host/INBOX/;UID=1;EXPIRE=2006-02-30T00:00:00Z;URLAUTH=anonymous",
    "imap://host/INBOX;URLAUTH=anonymous",
    "imap://host/INBOX/;UID=1/;UID=2",
    "imap://host/INBOX?",
    "imap://host/" + "a" * 9000,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_urls(text: str) -> None:
    with pytest.raises(BadUrl):
        imapurl.parse(text)
