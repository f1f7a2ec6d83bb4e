"""URLAUTH (RFC 4467) through a real server: GENURLAUTH, URLFETCH, RESETKEY with the INTERNAL
mechanism, the access identifiers, expiry, revocation, rights at use time, URLAUTH URLs as
CATENATE parts, and an imaplib round trip."""

from __future__ import annotations

import datetime as dt
import imaplib
import re

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

MESSAGE = (
    b"From: joe@example.com\r\nSubject: motto\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nSi vis pacem, para bellum.\r\n"
    b"--b--\r\n"
)
PART_2 = b"Si vis pacem, para bellum."  # BODY[2]: the CRLF before "--b" is the boundary's


def raw(server: RunningServer, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login(user, PASSWORD)
    return c


def append(c: RawClient, mailbox: str = "INBOX", message: bytes = MESSAGE) -> int:
    c.send(f"ap APPEND {mailbox} {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
    tagged = c.until_tagged("ap")[-1]
    m = re.match(r"ap OK \[APPENDUID \d+ (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1))


def genurlauth(c: RawClient, rump: str, tag: str = "g") -> str:
    out = c.command(tag, f'GENURLAUTH "{rump}" INTERNAL')
    assert out[-1] == f"{tag} OK GENURLAUTH completed", out
    (line,) = [r for r in out if r.startswith("* GENURLAUTH ")]
    m = re.fullmatch(r'\* GENURLAUTH "([^"]+)"', line)
    assert m, line
    return m.group(1)


def urlfetch(c: RawClient, url: str, tag: str = "u") -> bytes | None:
    """The data URLFETCH returns for ``url`` (None: NIL); the command must end in OK."""
    c.line(f'{tag} URLFETCH "{url}"')
    first = c.response_bytes()
    rest = c.until_tagged(tag)
    assert rest[-1] == f"{tag} OK URLFETCH completed", rest
    prefix = f'* URLFETCH "{url}" '.encode()
    assert first.startswith(prefix), first[:200]
    value = first[len(prefix) :]
    if value == b"NIL":
        return None
    m = re.match(rb"\{(\d+)\}\r\n", value)
    if m:
        data = value[m.end() :]
        assert len(data) == int(m.group(1))
        return data
    m = re.fullmatch(rb'"(.*)"', value)
    assert m, value
    return m.group(1)


def test_rfc4467_genurlauth_examples(server: RunningServer) -> None:
    """RFC 4467 §7's GENURLAUTH examples: BAD without an access identifier, BAD without
    an owner userid, else ``* GENURLAUTH`` with the rump + ``:INTERNAL:`` + a token of at
    least 32 hex digits (§3)."""
    c = raw(server)
    uid = append(c)
    out = c.command(
        "a775", f'GENURLAUTH "imap://alice@localhost/INBOX/;uid={uid}/;section=2" INTERNAL'
    )
    assert out[-1].startswith("a775 BAD "), out
    rump = f"imap://localhost/INBOX/;uid={uid}/;section=2;urlauth=submit+fred"
    out = c.command("a776", f'GENURLAUTH "{rump}" INTERNAL')
    assert out[-1].startswith("a776 BAD "), out
    rump = f"imap://alice@localhost/INBOX/;uid={uid}/;section=2;urlauth=submit+fred"
    full = genurlauth(c, rump, "a777")
    assert full.startswith(rump + ":INTERNAL:"), full
    token = full[len(rump) + len(":INTERNAL:") :]
    assert re.fullmatch(r"[0-9a-f]{32,}", token), token
    # The same rump, the same key: the same URL (the token is deterministic, §2.5).
    assert genurlauth(c, rump, "a778") == full


def test_genurlauth_refusals(server: RunningServer) -> None:
    """RFC 4467 §7: the mailbox must exist, the owner must be the user (no owner-type
    access to others' key tables here), the access identifier valid; unknown mechanisms
    and URLs that do not name a message are refused."""
    c = raw(server)
    uid = append(c)
    base = f"imap://alice@localhost/INBOX/;uid={uid}"
    rows = [
        (f"imap://alice@localhost/Nonexistent/;uid={uid};urlauth=anonymous", "INTERNAL"),
        (f"imap://bob@localhost/INBOX/;uid={uid};urlauth=anonymous", "INTERNAL"),
        (f"{base};urlauth=nobody", "INTERNAL"),
        (f"{base};urlauth=anonymous:internal:" + "0" * 32, "INTERNAL"),  # not a rump
        ("imap://alice@localhost/INBOX;urlauth=anonymous", "INTERNAL"),  # a mailbox
        (f"imap://alice@elsewhere.example/INBOX/;uid={uid};urlauth=anonymous", "INTERNAL"),
        (f"{base};urlauth=anonymous", "XSAMPLE"),
        ("not a url", "INTERNAL"),
    ]
    for n, (rump, mech) in enumerate(rows):
        out = c.command(f"b{n}", f'GENURLAUTH "{rump}" {mech}')
        assert out[-1].startswith(f"b{n} BAD "), (rump, out)
        assert not any(r.startswith("* GENURLAUTH") for r in out), out
    c.ok("z", "NOOP")


def test_urlfetch_access_identifiers(server: RunningServer) -> None:
    """RFC 4467 §3: user+X only for a session of X; authuser and anonymous for any
    logged-in session; submit+X only for a submission entity (here: an admin account).
    URLFETCH needs no selected mailbox and returns the data (RFC 4467 §7)."""
    server.add_user("carol")
    server.add_user("submit")
    server.call(server.server.store.set_admin("submit", True))
    alice = raw(server)
    uid = append(alice)
    base = f"imap://alice@localhost/INBOX/;uid={uid}/;section=2"
    for_bob = genurlauth(alice, base + ";urlauth=user+bob")
    authuser = genurlauth(alice, base + ";urlauth=authuser")
    anonymous = genurlauth(alice, base + ";urlauth=anonymous")
    submit = genurlauth(alice, base + ";urlauth=submit+alice")
    bob, carol, sub = raw(server, "bob"), raw(server, "carol"), raw(server, "submit")
    assert urlfetch(bob, for_bob) == PART_2
    assert urlfetch(carol, for_bob) is None
    assert urlfetch(alice, for_bob) is None  # user+bob: not even the owner
    assert urlfetch(carol, authuser) == PART_2
    assert urlfetch(bob, anonymous) == PART_2
    assert urlfetch(sub, submit) == PART_2
    assert urlfetch(bob, submit) is None
    # Several URLs in one command: one answer each, NIL where invalid; then OK.
    bob.line(f'm URLFETCH "{for_bob}" "{submit}" "imap://alice@localhost/INBOX"')
    out = bob.until_tagged("m")
    assert out[-1] == "m OK URLFETCH completed"
    assert out[0] == f'* URLFETCH "{for_bob}" {{26}}\r\n' + PART_2.decode(), out
    assert out[1:-1] == [
        f'* URLFETCH "{submit}" NIL',
        '* URLFETCH "imap://alice@localhost/INBOX" NIL',
    ]


def test_urlfetch_invalid_urls_are_nil(server: RunningServer) -> None:
    """RFC 4467 §7: "The returned data string is NIL if the URL is invalid for any reason
    (including validation failure)", and the command still ends OK."""
    alice = raw(server)
    uid = append(alice)
    good = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=anonymous")
    rump, _, token = good.rpartition(":")
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired_rump = f"imap://alice@localhost/INBOX/;uid={uid};EXPIRE={yesterday};urlauth=anonymous"
    expired = genurlauth(alice, expired_rump)
    bob = raw(server, "bob")
    rows = [
        f"{rump}:{flipped}",  # forged token
        good.replace("urlauth=anonymous", "urlauth=authuser"),  # another access, same token
        good.replace(f"uid={uid}", f"uid={uid + 1}"),  # another message, same token
        good.replace("INBOX", "Nonexistent"),
        good.replace("alice@", "nosuchuser@"),
        good.replace(":INTERNAL:", ":XSAMPLE:"),
        expired,  # RFC 4467 §3: "server implementations MUST reject the URL"
        f"imap://alice@localhost/INBOX/;uid={uid}",  # no URLAUTH at all
        "imap://alice@localhost/INBOX",  # a whole mailbox: NIL (§7)
        "garbage",
    ]
    for n, url in enumerate(rows):
        assert urlfetch(bob, url, f"n{n}") is None, url
    assert urlfetch(bob, good) is not None
    # The rump is used exactly as written: a URL with its case changed fails (§6).
    assert urlfetch(bob, good.replace("INBOX/;uid=", "INBOX/;UID=")) is None
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    live = genurlauth(alice, expired_rump.replace(yesterday, later))
    assert urlfetch(bob, live) == MESSAGE


def test_resetkey_revokes(server: RunningServer) -> None:
    """RFC 4467 §7 RESETKEY: with a mailbox, a new key (its old URLs stop working) and
    ``OK [URLMECH INTERNAL]``; without, every key of the user is removed."""
    alice = raw(server)
    alice.ok("c", "CREATE Work")
    uid = append(alice)
    wuid = append(alice, "Work")
    inbox = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=authuser")
    work = genurlauth(alice, f"imap://alice@localhost/Work/;uid={wuid};urlauth=authuser")
    bob = raw(server, "bob")
    assert urlfetch(bob, inbox) == MESSAGE and urlfetch(bob, work) == MESSAGE
    out = alice.command("a32", "RESETKEY INBOX")
    assert out[-1].startswith("a32 OK [URLMECH INTERNAL]"), out
    assert urlfetch(bob, inbox) is None
    assert urlfetch(bob, work) == MESSAGE
    renewed = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=authuser")
    assert renewed != inbox and urlfetch(bob, renewed) == MESSAGE
    out = alice.command("a31", "RESETKEY")
    assert out[-1].startswith("a31 OK"), out
    assert urlfetch(bob, renewed) is None and urlfetch(bob, work) is None
    out = alice.command("a33", "RESETKEY INBOX XSAMPLE")
    assert out[-1].startswith("a33 BAD "), out
    out = alice.command("a34", "RESETKEY Nonexistent")
    assert out[-1].startswith("a34 NO "), out


def test_owner_rights_at_use_time(server: RunningServer) -> None:
    """RFC 4467 §7: URLFETCH "executes with the access of the userid in the server
    component of the URL ... That access may have changed since the GENURLAUTH was done":
    bob's URL into his mailbox shared with alice stops working when his read right goes."""
    bob = raw(server, "bob")
    uid = append(bob)
    bob.ok("s", "SETACL INBOX alice lr")
    alice = raw(server)
    rump = f"imap://alice@localhost/Other%20Users/bob/INBOX/;uid={uid};urlauth=authuser"
    url = genurlauth(alice, rump)
    reader = raw(server, "bob")
    assert urlfetch(reader, url) == MESSAGE
    bob.ok("s2", "SETACL INBOX alice l")
    assert urlfetch(reader, url) is None


def test_urlauth_url_as_catenate_part(server: RunningServer) -> None:
    """A URLAUTH-authorized URL is usable as a CATENATE part: bob builds a message from a
    part of alice's message he could not otherwise read; tampered, it is BADURL."""
    alice = raw(server)
    uid = append(alice)
    url = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid}/;section=2;urlauth=user+bob")
    bob = raw(server, "bob")
    head = b"Subject: forwarded\r\n\r\n"
    bob.send(
        f"c APPEND INBOX CATENATE (TEXT {{{len(head)}+}}\r\n".encode()
        + head
        + f' URL "{url}")\r\n'.encode()
    )
    out = bob.until_tagged("c")
    assert out[-1].startswith("c OK [APPENDUID "), out
    assert urlfetch(alice, url) is None  # user+bob
    bob.ok("e", "EXAMINE INBOX")
    bob.line("f FETCH 1 BODY.PEEK[]")
    data = bob.response_bytes()
    assert data.endswith(head + PART_2 + b")"), data
    bob.until_tagged("f")
    bad = url[:-1] + ("0" if url[-1] != "0" else "1")
    out = bob.command("d", f'APPEND INBOX CATENATE (URL "{bad}")')
    assert out[-1].startswith(f"d NO [BADURL {bad}]"), out


def test_imaplib_round_trip(server: RunningServer) -> None:
    """imaplib (a real client) generates and fetches: RFC 4467's commands as it sends them."""
    for name in ("GENURLAUTH", "URLFETCH", "RESETKEY"):
        imaplib.Commands.setdefault(name, ("AUTH", "SELECTED"))
    m = imaplib.IMAP4(server.host, server.port)
    m.login("alice", PASSWORD)
    typ, _ = m.append("INBOX", None, None, MESSAGE)
    assert typ == "OK"
    rump = '"imap://alice@localhost/INBOX/;uid=1/;section=2;urlauth=anonymous"'
    typ, data = m._simple_command("GENURLAUTH", rump, "INTERNAL")
    assert typ == "OK", data
    typ, data = m._untagged_response(typ, data, "GENURLAUTH")
    url = data[0].decode().strip('"')
    assert url.startswith(rump.strip('"') + ":INTERNAL:")
    typ, data = m._simple_command("URLFETCH", f'"{url}"')
    assert typ == "OK", data
    typ, data = m._untagged_response(typ, data, "URLFETCH")
    assert isinstance(data[0], tuple) and data[0][1] == PART_2, data
    typ, data = m._simple_command("RESETKEY")
    assert typ == "OK"
    m.logout()


def test_url_host_may_be_the_address_connected_to(server: RunningServer) -> None:
    """RFC 4467 §6/§7 need the URL to name this server: besides `servername` (localhost
    here), the IP literal the client reached it at names it too (imaptest builds its URLs
    as ``imap://user@<address it connected to>/``); another address still does not, for
    GENURLAUTH, URLFETCH and a CATENATE URL."""
    assert server.host == "127.0.0.1"
    c = raw(server)
    uid = append(c)
    rump = f"imap://alice@127.0.0.1/INBOX/;uid={uid}/;section=2;urlauth=user+alice"
    url = genurlauth(c, rump)
    assert url.startswith(rump + ":INTERNAL:")
    assert urlfetch(c, url) == PART_2
    other = rump.replace("@127.0.0.1/", "@127.0.0.2/")
    out = c.command("x", f'GENURLAUTH "{other}" INTERNAL')
    assert out[-1].startswith("x BAD "), out
    # the same URL rump with another host: the token does not carry over (NIL)
    assert urlfetch(c, url.replace("@127.0.0.1/", "@localhost/")) is None
    out = c.command("k", "CREATE Drafts2")
    assert out[-1].startswith("k OK"), out
    part = f"INBOX/;uid={uid}/;section=2"
    c.send(f'y APPEND Drafts2 CATENATE (URL "imap://alice@127.0.0.1/{part}")\r\n'.encode())
    assert c.until_tagged("y")[-1].startswith("y OK"), "CATENATE from the connected address"
    c.send(f'w APPEND Drafts2 CATENATE (URL "imap://alice@127.0.0.2/{part}")\r\n'.encode())
    assert c.until_tagged("w")[-1].startswith("w NO [BADURL"), "another address"
