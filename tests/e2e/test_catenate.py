"""CATENATE (RFC 4469) through a real server: the RFC's examples with synchronizing literals,
relative URLs, rights, BADURL, TOOBIG, NUL in TEXT, MULTIAPPEND, REPLACE (RFC 8508 §4.2),
spooled results, and the events an APPEND emits."""

from __future__ import annotations

import re
import time
from typing import Any

from imapd.protocol.connection import Limits
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

BOUNDARY = "------------030308070208000400050907"
#: RFC 4469 Appendix A's message UID 20: multipart/mixed, 1 text/plain, 2 a zip.
ORIGINAL = (
    "From: Bob Ar <bar@example.org>\r\n"
    "Subject: About our holiday trip\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed;\r\n"
    f'              boundary="{BOUNDARY}"\r\n'
    "\r\n"
    f"--{BOUNDARY}\r\n"
    "Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Our travel agent has sent the updated schedule.\r\n"
    f"--{BOUNDARY}\r\n"
    'Content-Type: application/x-zip-compressed; name="trip.zip"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "UEsDBAoAAAAAAA==\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()
MIDDLE = f"\r\n--{BOUNDARY}\r\n".encode()  # RFC 4469 Example 1's TEXT {42}
END = f"\r\n--{BOUNDARY}--\r\n".encode()  # and its TEXT {44}


def raw(server: RunningServer, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login(user, PASSWORD)
    return c


def append(c: RawClient, tag: str, mailbox: str, message: bytes, flags: str = "") -> int:
    """APPEND with a LITERAL+ literal; the new UID (APPENDUID)."""
    flags = f" {flags}" if flags else ""
    c.send(f"{tag} APPEND {mailbox}{flags} {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
    tagged = c.until_tagged(tag)[-1]
    m = re.match(rf"{tag} OK \[APPENDUID (\d+) (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(2))


def uidvalidity(c: RawClient, mailbox: str) -> int:
    out = c.ok("s", f"STATUS {mailbox} (UIDVALIDITY)")
    return int(re.search(r"UIDVALIDITY (\d+)", out[0]).group(1))  # type: ignore[union-attr]


def sync_command(c: RawClient, tag: str, pieces: list[bytes | str]) -> list[str]:
    """Send a command whose literals are synchronizing: ``pieces`` alternate command text
    (ending ``{n}``) and literal octets; each literal waits for the server's ``+``."""
    for piece in pieces:
        if isinstance(piece, str):
            c.send(piece.encode())
            if piece.endswith("}"):
                c.send(b"\r\n")
                reply = c.response()
                if not reply.startswith("+"):
                    return [reply]
        else:
            c.send(piece)
    c.send(b"\r\n")
    return c.until_tagged(tag)


def body(c: RawClient, mailbox: str, uid: int) -> bytes:
    c.ok("e", f"EXAMINE {mailbox}")
    c.line(f"f UID FETCH {uid} BODY.PEEK[]")
    data = c.response_bytes()
    assert c.until_tagged("f")[-1].startswith("f OK")
    m = re.match(rb"\* \d+ FETCH \(UID \d+ BODY\[\] \{(\d+)\}\r\n", data) or re.match(
        rb"\* \d+ FETCH \(BODY\[\] \{(\d+)\}\r\n", data
    )
    assert m, data[:100]
    start = m.end()
    return data[start : start + int(m.group(1))]


def flags(c: RawClient, mailbox: str, uid: int) -> str:
    c.ok("e", f"EXAMINE {mailbox}")
    out = c.ok("f", f"UID FETCH {uid} FLAGS")
    return out[0]


def no_spool_files(server: RunningServer) -> None:
    """The spool directory empties once the commands are over (the session removes its
    literals' files after answering: wait a little for that)."""
    spool = server.config.data_dir / "spool"
    for _ in range(50):
        if not list(spool.glob("*")):
            return
        time.sleep(0.05)
    raise AssertionError(f"spool files left: {list(spool.glob('*'))}")


def header_of(message: bytes) -> bytes:
    return message[: message.index(b"\r\n\r\n") + 4]


def test_capabilities(server: RunningServer) -> None:
    """RFC 4469 §5: capability =/ "CATENATE"; RFC 4467 §9: capability =/ "URLAUTH"."""
    caps = raw(server).ok("a", "CAPABILITY")[0].split()
    assert "CATENATE" in caps and "URLAUTH" in caps


def test_rfc4469_example_1_replace_attachment(server: RunningServer) -> None:
    """RFC 4469 Appendix A, Example 1, with synchronizing literals as written there: the
    header, part 1's MIME header and body from the old draft, the new attachment from
    another message; "the server copies octets, unchanged" (§3)."""
    c = raw(server)
    uid20 = append(c, "a1", "Drafts", ORIGINAL, "(\\Seen \\Draft)")
    attachment = b"Content-Type: text/plain\r\n\r\nnew attachment\r\n"
    uid30 = append(c, "a2", "Drafts", attachment)
    v = uidvalidity(c, "Drafts")
    out = sync_command(
        c,
        "A003",
        [
            "A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE"
            f' (URL "/Drafts;UIDVALIDITY={v}/;UID={uid20}/;section=HEADER" TEXT {{42}}',
            MIDDLE,
            f' URL "/Drafts;UIDVALIDITY={v}/;UID={uid20}/;section=1.MIME"'
            f' URL "/Drafts;UIDVALIDITY={v}/;UID={uid20}/;section=1" TEXT {{42}}',
            MIDDLE,
            f' URL "/Drafts;UIDVALIDITY={v}/;UID={uid30}" TEXT {{44}}',
            END,
            ")",
        ],
    )
    m = re.match(rf"A003 OK \[APPENDUID {v} (\d+)\]", out[-1])
    assert m, out
    part1_mime = (
        b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    expected = (
        header_of(ORIGINAL)
        + MIDDLE
        + part1_mime
        + b"Our travel agent has sent the updated schedule."
        + MIDDLE
        + attachment
        + END
    )
    assert body(c, "Drafts", int(m.group(1))) == expected
    assert "$MDNSent" in flags(c, "Drafts", int(m.group(1)))


def test_rfc4469_example_2_text_first_then_urls(server: RunningServer) -> None:
    """Example 2: a TEXT literal with new headers and text, then part 2 by URL (its MIME
    header and body); APPENDUID in the tagged OK (UIDPLUS, §3)."""
    c = raw(server)
    uid20 = append(c, "a1", "Drafts", ORIGINAL)
    v = uidvalidity(c, "Drafts")
    text = (
        b"Subject: About our holiday trip (new)\r\n"
        b'Content-Type: multipart/mixed; boundary="' + BOUNDARY.encode() + b'"\r\n\r\n'
        b"--" + BOUNDARY.encode() + b"\r\nContent-Type: text/plain\r\n\r\nCheers,\r\nBob" + MIDDLE
    )
    c.send(
        f"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT {{{len(text)}+}}\r\n".encode()
        + text
        + f' URL "/Drafts;UIDVALIDITY={v}/;UID={uid20}/;Section=2.MIME"'
        f' URL "/Drafts;UIDVALIDITY={v}/;UID={uid20}/;Section=2" TEXT {{44+}}\r\n'.encode()
        + END
        + b")\r\n"
    )
    out = c.until_tagged("A003")
    m = re.match(rf"A003 OK \[APPENDUID {v} (\d+)\]", out[-1])
    assert m, out
    got = body(c, "Drafts", int(m.group(1)))
    assert got == text + (
        b'Content-Type: application/x-zip-compressed; name="trip.zip"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAAAAAA==" + END
    )


def test_rfc4469_example_4_badurl_appends_nothing(server: RunningServer) -> None:
    """Example 4: a URL naming no message fails the whole APPEND with NO [BADURL url],
    naming the first URL that failed (§4.1), and nothing is appended."""
    c = raw(server)
    uid = append(c, "a1", "INBOX", ORIGINAL)
    v = uidvalidity(c, "INBOX")
    bad = f"/INBOX;UIDVALIDITY={v}/;UID=113330/;section=1.5.9"
    c.send(
        f"A003 APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT {{6+}}\r\nhi\r\n\r\n"
        f' URL "/INBOX;UIDVALIDITY={v}/;UID={uid}" TEXT {{42+}}\r\n'.encode()
        + MIDDLE
        + f' URL "{bad}" URL "/INBOX;UIDVALIDITY={v}/;UID=9999")\r\n'.encode()
    )
    out = c.until_tagged("A003")
    assert out[-1].startswith(f"A003 NO [BADURL {bad}] "), out
    assert "MESSAGES 0" in c.ok("s", "STATUS Sent (MESSAGES)")[0]


def test_badurl_rows(server: RunningServer) -> None:
    """Hostile and unusable URLs: each one is BADURL, none crashes, nothing is appended."""
    c = raw(server)
    uid = append(c, "a1", "INBOX", ORIGINAL)
    v = uidvalidity(c, "INBOX")
    rows = [
        "not a url",
        "/INBOX",  # a mailbox, not a message
        f"/INBOX;UIDVALIDITY={v + 1}/;UID={uid}",  # UIDVALIDITY changed
        f"/INBOX/;UID={uid}/;SECTION=7",  # no such part
        f"/INBOX/;UID={uid}/;SECTION=1.HEADER",  # HEADER of a part that is not a message
        f"/INBOX/;UID={uid}/;SECTION=BOGUS",
        f"/INBOX/;UID={uid}/;PARTIAL=x",
        f"/INBOX/;UID={uid + 1}",  # not there (yet): the message being built, say
        "/Nonexistent/;UID=1",
        f"imap://bob@localhost/INBOX/;UID={uid}",  # another user, without URLAUTH
        f"imap://alice@elsewhere.example/INBOX/;UID={uid}",  # another server
        f"http://localhost/INBOX/;UID={uid}",
        f"/INBOX/;UID={uid}?ALL",
        "/INBOX/;UID=0",
        "/INBOX/;UID=99999999999",
        "/%FF%FE/;UID=1",  # not UTF-8
        "/IN%00BOX/;UID=1",  # a control character
        "/" + "a" * 9000 + "/;UID=1",
        f";UID={uid}",  # relative to the selected mailbox: none is selected
        f"/INBOX/;UID={uid};URLAUTH=anonymous:INTERNAL:" + "0" * 66,  # a forged URLAUTH
        f"/INBOX/;UID={uid}/;SECTION=]",
    ]
    for n, url in enumerate(rows):
        quoted = '"' + url.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out = c.command(f"b{n}", f"APPEND INBOX CATENATE (URL {quoted})")
        if len(url) > 8192:
            assert out[-1].startswith(f"b{n} BAD "), (url[:50], out)
            continue
        assert out[-1].startswith(f"b{n} NO [BADURL "), (url, out)
        code = out[-1][len(f"b{n} NO [BADURL ") :]
        assert "]" in code and not code.split("]")[0].count("]"), out
    assert "MESSAGES 1" in c.ok("s", "STATUS INBOX (MESSAGES)")[0]
    c.ok("z", "NOOP")


def test_relative_url_in_selected_mailbox_and_seen_untouched(server: RunningServer) -> None:
    """RFC 4469 §3: in the selected state the base is imap://user@server/mailbox, so
    ``;UID=n`` names a message of the selected mailbox; "The APPEND command does not cause
    the \\Seen flag to be set for any catenated body part"."""
    c = raw(server)
    uid = append(c, "a1", "INBOX", ORIGINAL)
    c.ok("s", "SELECT INBOX")
    out = c.command(
        "a2", f'APPEND Drafts CATENATE (URL ";UID={uid}/;SECTION=HEADER" TEXT {{4+}}\r\nhi\r\n)'
    )
    assert out[-1].startswith("a2 OK [APPENDUID "), out
    new = int(re.search(r"APPENDUID \d+ (\d+)", out[-1]).group(1))  # type: ignore[union-attr]
    assert body(c, "Drafts", new) == header_of(ORIGINAL) + b"hi\r\n"
    assert "\\Seen" not in flags(c, "INBOX", uid)
    # RFC 8508 §4.2's form: an absolute path with "/" before ";UID=".
    out = c.command("a3", f'APPEND Drafts CATENATE (URL "/INBOX/;UID={uid}/;PARTIAL=0.4")')
    assert out[-1].startswith("a3 OK"), out
    new = int(re.search(r"APPENDUID \d+ (\d+)", out[-1]).group(1))  # type: ignore[union-attr]
    assert body(c, "Drafts", new) == ORIGINAL[:4]


def test_rights_checked_on_source(server: RunningServer) -> None:
    """URL parts come from mailboxes the user can read (RFC 4314 ``r``): bob's mailbox
    shared with ``l`` only is a BADURL for alice; with ``lr`` it can be catenated."""
    bob = raw(server, "bob")
    uid = append(bob, "b1", "INBOX", ORIGINAL)
    bob.ok("b2", "SETACL INBOX alice l")
    alice = raw(server)
    url = f"/Other Users/bob/INBOX/;UID={uid}"
    quoted = f'"{url}"'.replace(" ", "%20")
    out = alice.command("a1", f"APPEND INBOX CATENATE (URL {quoted})")
    assert out[-1].startswith("a1 NO [BADURL "), out
    bob.ok("b3", "SETACL INBOX alice lr")
    out = alice.command("a2", f"APPEND INBOX CATENATE (URL {quoted})")
    assert out[-1].startswith("a2 OK"), out
    new = int(re.search(r"APPENDUID \d+ (\d+)", out[-1]).group(1))  # type: ignore[union-attr]
    assert body(alice, "INBOX", new) == ORIGINAL
    assert "\\Seen" not in flags(bob, "INBOX", uid)


def test_text_literal_nul(server: RunningServer) -> None:
    """RFC 4469 §5 text-literal = "TEXT" SP literal: a literal is CHAR8 (no NUL); a literal8
    (RFC 3516) may carry NUL."""
    c = raw(server)
    out = c.command("a1", "APPEND INBOX CATENATE (TEXT {7+}\r\nA:\x00\r\n\r\n)")
    assert out[-1].startswith("a1 BAD "), out
    out = c.command("a2", "APPEND INBOX CATENATE (TEXT ~{7+}\r\nA:\x00\r\n\r\n)")
    assert out[-1].startswith("a2 OK"), out
    out = c.command("a3", "APPEND INBOX CATENATE ()")
    assert out[-1].startswith("a3 BAD "), out
    out = c.command("a4", "APPEND INBOX CATENATE (TEXT {0+}\r\n)")
    assert out[-1].startswith("a4 BAD "), out  # an empty message, as APPEND {0}
    out = c.command("a5", "APPEND INBOX CATENATE (TEXT)")
    assert out[-1].startswith("a5 BAD "), out
    out = c.command("a6", "APPEND INBOX CATENATE (FOO {1+}\r\nx)")
    assert out[-1].startswith("a6 BAD "), out
    assert "MESSAGES 1" in c.ok("s", "STATUS INBOX (MESSAGES)")[0]


def test_multiappend_with_catenate_is_atomic(server: RunningServer) -> None:
    """MULTIAPPEND (RFC 3502) with CATENATE messages: all appended, or (one BADURL) none."""
    c = raw(server)
    uid = append(c, "a1", "INBOX", ORIGINAL)
    out = c.command(
        "a2",
        f'APPEND Drafts CATENATE (URL "/INBOX/;UID={uid}/;SECTION=1")'
        " (\\Draft) {12+}\r\nSubject: x\r\n"
        " CATENATE (TEXT {9+}\r\nSubject: "
        f' URL "/INBOX/;UID={uid}/;SECTION=1")',
    )
    assert re.match(r"a2 OK \[APPENDUID \d+ 1:3\]", out[-1]), out
    assert body(c, "Drafts", 3) == b"Subject: Our travel agent has sent the updated schedule."
    out = c.command(
        "a3",
        f'APPEND Drafts CATENATE (URL "/INBOX/;UID={uid}") CATENATE (URL "/INBOX/;UID=77")',
    )
    assert out[-1].startswith("a3 NO [BADURL /INBOX/;UID=77]"), out
    assert "MESSAGES 3" in c.ok("s", "STATUS Drafts (MESSAGES)")[0]


def test_toobig(server_factory: Any) -> None:
    """RFC 4469 §4.2: NO [TOOBIG] when the result exceeds the server's limit (APPENDLIMIT):
    three URLs of a message each within it, together over it."""
    srv = server_factory(limits=Limits(max_literal_size=3000, literal_spool_size=1024))
    srv.add_user("alice")
    c = raw(srv)
    uid = append(c, "a1", "INBOX", b"Subject: big\r\n\r\n" + b"x" * 1200)
    url = f' URL "/INBOX/;UID={uid}"'
    out = c.command("a2", "APPEND INBOX CATENATE (" + (url * 2).strip() + ")")
    assert out[-1].startswith("a2 OK"), out  # 2432 octets: within
    out = c.command("a3", "APPEND INBOX CATENATE (" + (url * 3).strip() + ")")
    assert out[-1].startswith("a3 NO [TOOBIG]"), out
    # A thousand URLs into one message: TOOBIG long before a thousand reads.
    out = c.command("a4", "APPEND INBOX CATENATE (" + (url * 1000).strip() + ")")
    assert out[-1].startswith("a4 NO [TOOBIG]"), out
    assert "MESSAGES 2" in c.ok("s", "STATUS INBOX (MESSAGES)")[0]
    no_spool_files(srv)  # the spooled result removed


def test_read_budget(server_factory: Any) -> None:
    """Many small parts of many messages: the octets read for one command are bounded
    (``max_literal_total``): NO [LIMIT], nothing appended."""
    srv = server_factory(limits=Limits(max_literal_size=100_000, max_literal_total=50_000))
    srv.add_user("alice")
    c = raw(srv)
    uids = [append(c, f"a{i}", "INBOX", b"Subject: x\r\n\r\n" + b"y" * 9000) for i in range(2)]
    parts = " ".join(f'URL "/INBOX/;UID={uids[i % 2]}/;PARTIAL=0.1"' for i in range(20))
    out = c.command("b", f"APPEND Drafts CATENATE ({parts})")
    assert out[-1].startswith("b NO [LIMIT]"), out
    # The same message part after part is read once.
    parts = " ".join(f'URL "/INBOX/;UID={uids[0]}/;PARTIAL={i}.1"' for i in range(20))
    out = c.command("c", f"APPEND Drafts CATENATE ({parts})")
    assert out[-1].startswith("c OK"), out


def test_spooled_text_and_result(server_factory: Any) -> None:
    """TEXT literals past literal_spool_size are spooled, and so is a built message past
    it: the stored message is every part in order; no spool file is left."""
    srv = server_factory(limits=Limits(max_literal_size=200_000, literal_spool_size=4096))
    srv.add_user("alice")
    c = raw(srv)
    uid = append(c, "a1", "INBOX", ORIGINAL)
    big = b"Subject: spooled\r\n\r\n" + b"z" * 10_000 + b"\r\n"
    out = sync_command(
        c,
        "a2",
        [f"a2 APPEND Drafts CATENATE (TEXT {{{len(big)}}}", big, f' URL "/INBOX/;UID={uid}")'],
    )
    assert out[-1].startswith("a2 OK"), out
    assert body(c, "Drafts", 1) == big + ORIGINAL
    # NUL in a spooled plain literal is refused too.
    nul = b"Subject: x\r\n\r\n" + b"\x00" * 5000
    out = sync_command(c, "a3", [f"a3 APPEND Drafts CATENATE (TEXT {{{len(nul)}}}", nul, ")"])
    assert out[-1].startswith("a3 BAD "), out
    no_spool_files(srv)


def test_replace_with_catenate(server: RunningServer) -> None:
    """RFC 8508 §4.2: REPLACE takes CATENATE's append-data; its example completes a draft
    with To: and Subject: in front of the old draft."""
    c = raw(server)
    draft = b"From: me@example.org\r\n\r\nThe fireworks were great.\r\n"
    uid = append(c, "a1", "Drafts", draft)
    c.ok("s", "SELECT Drafts")
    head = b"To: Mitzy <miss.mitzy@example.org>\r\nSubject: My view of the fireworks\r\n"
    c.send(
        f"A011 UID REPLACE {uid} Drafts CATENATE (TEXT {{{len(head)}+}}\r\n".encode()
        + head
        + f' URL "/Drafts/;UID={uid}")\r\n'.encode()
    )
    out = c.until_tagged("A011")
    assert out[-1] == "A011 OK REPLACE completed", out
    appenduid = [r for r in out if "APPENDUID" in r]
    assert appenduid and appenduid[0].startswith("* OK [APPENDUID "), out
    new = int(re.search(r"APPENDUID \d+ (\d+)", appenduid[0]).group(1))  # type: ignore[union-attr]
    assert body(c, "Drafts", new) == head + draft
    assert "MESSAGES 1" in c.ok("t", "STATUS Drafts (MESSAGES)")[0]
    # A BADURL leaves the message to replace in place.
    c.ok("s2", "SELECT Drafts")
    out = c.command("A012", f'UID REPLACE {new} Drafts CATENATE (URL "/Drafts/;UID={uid}")')
    assert out[-1].startswith("A012 NO [BADURL "), out
    assert "MESSAGES 1" in c.ok("t2", "STATUS Drafts (MESSAGES)")[0]
