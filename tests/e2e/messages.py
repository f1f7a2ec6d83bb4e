"""Sample messages for end-to-end tests (built here, never hard-coded server answers)."""

from __future__ import annotations

SIMPLE = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>, carol@example.org\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Fri, 06 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <lunch-1@example.org>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
    b"The usual place.\r\n"
)

NESTED = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Forwarded report\r\n"
    b"Date: Sat, 07 Nov 2026 09:30:00 +0000\r\n"
    b"Message-ID: <fwd-2@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=C3=A9 report attached.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Caf\xc3\xa9 report attached.</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Carol <carol@example.org>\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Message-ID: <q3@example.org>\r\n"
    b'Content-Type: multipart/mixed; boundary="deep"\r\n'
    b"\r\n"
    b"--deep\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Figures inside.\r\n"
    b"--deep\r\n"
    b'Content-Type: application/octet-stream; name="q3.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="q3.bin"\r\n'
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--deep--\r\n"
    b"--outer--\r\n"
)


def numbered(n: int, *, subject: str = "Message", body: str = "body") -> bytes:
    return (
        f"From: sender{n}@example.org\r\n"
        f"To: alice@example.org\r\n"
        f"Subject: {subject} {n}\r\n"
        f"Message-ID: <m{n}@example.org>\r\n"
        f"\r\n"
        f"{body} {n}\r\n"
    ).encode()
