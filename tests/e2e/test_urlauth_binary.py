"""URLAUTH=BINARY (RFC 5524) through a real server: URLFETCH with BINARY, BODY and
BODYPARTSTRUCTURE, after the RFC's §4 examples: a text part, a base64 image holding NUL
(literal8), an unknown encoding (BINARY NIL), a missing part (NIL), and refusals."""

from __future__ import annotations

import base64
import re

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2  # NUL octets inside
B64 = base64.encodebytes(PNG)  # 76-column lines, LF: stored as sent
BLOB = b"%%%% not decodable %%%%\r\n"
MESSAGE = (
    b"From: joe@example.com\r\nSubject: picture\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Si vis pacem, para bel=\r\nlum.\r\n"
    b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + B64.replace(b"\n", b"\r\n")
    + b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: x-blurdybloop\r\n\r\n"
    + BLOB
    + b"--b--\r\n"
)


def setup(server: RunningServer) -> tuple[RawClient, str]:
    c = RawClient.connect(server.host, server.port)
    c.login("alice", PASSWORD)
    c.send(f"ap APPEND INBOX {{{len(MESSAGE)}+}}\r\n".encode() + MESSAGE + b"\r\n")
    assert c.until_tagged("ap")[-1].startswith("ap OK")
    return c, "imap://alice@localhost/INBOX/;uid=1/;section={};urlauth=anonymous"


def gen(c: RawClient, rump: str) -> str:
    out = c.command("g", f'GENURLAUTH "{rump}" INTERNAL')
    assert out[-1].startswith("g OK"), out
    return re.fullmatch(r'\* GENURLAUTH "([^"]+)"', out[0]).group(1)  # type: ignore[union-attr]


def fetch(c: RawClient, url: str, params: str) -> bytes:
    c.line(f'u URLFETCH ("{url}" {params})')
    first = c.response_bytes()
    assert c.until_tagged("u")[-1] == "u OK URLFETCH completed"
    prefix = f'* URLFETCH "{url}" '.encode()
    assert first.startswith(prefix), first[:200]
    return first[len(prefix) :]


def test_capability(server: RunningServer) -> None:
    """RFC 5524 §5: capability =/ "URLAUTH=BINARY"."""
    c, _ = setup(server)
    assert "URLAUTH=BINARY" in c.ok("a", "CAPABILITY")[0].split()


def test_rfc5524_binary_of_text_part(server: RunningServer) -> None:
    """§4, first example: BINARY of a text part: the data without its transfer encoding, as
    a literal (no NUL)."""
    c, rump = setup(server)
    url = gen(c, rump.format("2"))
    assert fetch(c, url, "BINARY") == b"(BINARY {26}\r\nSi vis pacem, para bellum.)"
    # §3.2: the structure "will reflect any conversions or decoding": the identity encoding
    # the decoded octets fit (7BIT: US-ASCII lines), their size and line count
    got = fetch(c, url, "BODYPARTSTRUCTURE BINARY")
    assert b' "7BIT" 26 0 ' in got.split(b" (BINARY ")[0], got


def test_rfc5524_binary_with_nul_is_literal8(server: RunningServer) -> None:
    """§4, second example (body-fld-param NIL for no parameters, as all our BODYSTRUCTUREs
    write it): "BINARY BODYPARTSTRUCTURE" of an image: the structure shows the
    identity encoding and the decoded size, and data holding NUL "MUST be transferred using
    the literal8 syntax" (§3.1)."""
    c, rump = setup(server)
    url = gen(c, rump.format("3"))
    got = fetch(c, url, "BINARY BODYPARTSTRUCTURE")
    ext = "NIL NIL NIL NIL"  # md5, disposition, language, location: the BODYSTRUCTURE form
    head = f'(BODYPARTSTRUCTURE ("IMAGE" "PNG" NIL NIL NIL "BINARY" {len(PNG)} {ext})) '.encode()
    assert got == head + f"(BINARY ~{{{len(PNG)}}}\r\n".encode() + PNG + b")"


def test_rfc5524_structure_only_and_body(server: RunningServer) -> None:
    """§4: BODYPARTSTRUCTURE alone shows the part as stored (BASE64, its size); with BODY
    the data comes as-is, transfer encoding still applied."""
    c, rump = setup(server)
    url = gen(c, rump.format("3"))
    stored = B64.replace(b"\n", b"\r\n")[:-2]  # the CRLF before the boundary is not the part's
    ext = "NIL NIL NIL NIL"
    structure = f'(BODYPARTSTRUCTURE ("IMAGE" "PNG" NIL NIL NIL "BASE64" {len(stored)} {ext}))'
    assert fetch(c, url, "BODYPARTSTRUCTURE") == structure.encode()
    got = fetch(c, url, "BODYPARTSTRUCTURE BODY")
    assert got == structure.encode() + f" (BODY {{{len(stored)}}}\r\n".encode() + stored + b")"


def test_rfc5524_undecodable_and_missing(server: RunningServer) -> None:
    """§4: an encoding the server cannot decode gives the structure as is and BINARY NIL;
    a part that does not exist gives NIL "instead of metadata"."""
    c, rump = setup(server)
    url = gen(c, rump.format("4"))
    got = fetch(c, url, "BODYPARTSTRUCTURE BINARY")
    assert (
        got
        == (
            '(BODYPARTSTRUCTURE ("IMAGE" "PNG" NIL NIL NIL "X-BLURDYBLOOP" '
            f"{len(BLOB) - 2} NIL NIL NIL NIL))"
            " (BINARY NIL)"
        ).encode()
    )
    missing = gen(c, rump.format("200"))
    assert fetch(c, missing, "BODYPARTSTRUCTURE BODY") == b"NIL"
    # The whole message is no leaf, and has no transfer encoding to undo: its octets, as
    # BODY sends them.
    whole = gen(c, "imap://alice@localhost/INBOX/;uid=1;urlauth=anonymous")
    body = fetch(c, whole, "BODY")
    assert body.startswith(b"(BODY {")
    assert fetch(c, whole, "BINARY") == b"(BINARY" + body[len(b"(BODY") :]
    # A section that is no part has no structure: NIL.
    header = gen(c, rump.format("HEADER"))
    assert fetch(c, header, "BODYPARTSTRUCTURE") == b"NIL"
    assert fetch(c, header, "BODY").startswith(b"(BODY {")


def test_rfc5524_parameters_checked(server: RunningServer) -> None:
    """§3.1: "Metadata items MUST NOT appear more than once per URL requested, and clients
    MUST NOT request both BINARY and BODY"; no parameters at all behave as RFC 4467."""
    c, rump = setup(server)
    url = gen(c, rump.format("2"))
    for n, params in enumerate(["BINARY BINARY", "BINARY BODY", "FOO"]):
        out = c.command(f"b{n}", f'URLFETCH ("{url}" {params})')
        assert out[-1].startswith(f"b{n} BAD "), out
    c.line(f'p URLFETCH ("{url}")')
    first = c.response_bytes()
    assert c.until_tagged("p")[-1].startswith("p OK")
    qp = b"Si vis pacem, para bel=\r\nlum."
    assert first == f'* URLFETCH "{url}" {{{len(qp)}}}\r\n'.encode() + qp
    # An invalid URL with parameters: a simple NIL.
    assert fetch(c, url[:-1] + ("0" if url[-1] != "0" else "1"), "BINARY") == b"NIL"
