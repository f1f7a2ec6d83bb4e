"""The compose stack's integration test, run inside the `tests` container (stdlib only).

Over the compose network, by service name: wait (bounded) for the IMAP greeting and the LMTP
banner, start an IDLE session as alice, deliver a message by LMTP, check that the IDLE session
sees it at once, read it back by IMAP, and find its MessageNew event in what the `notifyd`
service printed (its standard output is also appended to a file on the volume both share).
Prints one ``name: ok|FAIL ...`` line per check and then a bare ``N passed, N failed`` line;
exits 1 when a check failed. Not collected by pytest (tests/test_compose.py runs the stack).

Environment: IMAP_HOST (imapd), IMAP_PORT (1143), LMTP_PORT (2424), IMAP_USERS
(alice:secret,bob:secret), EVENTS_FILE (/run/imapd/notifyd.log), WAIT_SECONDS (60).
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import smtplib
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # mypy and ruff see the repository's package
    from tests.compose.checks import Checks, read_until, wait_for_banner
else:  # the tests container runs this file from /opt/tests, where checks.py sits beside it
    from checks import Checks, read_until, wait_for_banner

HOST = os.environ.get("IMAP_HOST", "imapd")
IMAP_PORT = int(os.environ.get("IMAP_PORT", "1143"))
LMTP_PORT = int(os.environ.get("LMTP_PORT", "2424"))
USERS = dict(
    entry.split(":", 1)
    for entry in os.environ.get("IMAP_USERS", "alice:secret,bob:secret").split(",")
)
EVENTS_FILE = Path(os.environ.get("EVENTS_FILE", "/run/imapd/notifyd.log"))
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "60"))

TOKEN = uuid.uuid4().hex
MESSAGE_ID = f"<compose-{TOKEN}@example.org>"
MESSAGE = (
    "From: Sender <sender@example.org>\r\n"
    "To: Alice <alice@example.org>\r\n"
    f"Subject: compose {TOKEN}\r\n"
    f"Message-ID: {MESSAGE_ID}\r\n"
    "Date: Fri, 06 Nov 2026 10:00:00 +0100\r\n"
    "\r\n"
    f"delivered by LMTP inside the compose stack ({TOKEN})\r\n"
).encode()

check = Checks()
state: dict[str, Any] = {}  # what one check leaves for the next ones


def imap_login(user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
    client.login(user, USERS[user])
    return client


@check("imap_greeting")
def _() -> None:
    line = wait_for_banner(HOST, IMAP_PORT, b"* OK", WAIT_SECONDS)
    assert b"IMAP4rev1" in line, line


@check("lmtp_banner")
def _() -> None:
    line = wait_for_banner(HOST, LMTP_PORT, b"220", WAIT_SECONDS)
    assert b"LMTP" in line, line


@check("seeded_users_log_in")
def _() -> None:
    for user in USERS:
        client = imap_login(user)
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    bad = imaplib.IMAP4(HOST, IMAP_PORT, timeout=10)
    try:
        bad.login("alice", "wrong-" + TOKEN)
    except imaplib.IMAP4.error:
        pass
    else:
        raise AssertionError("a wrong password was accepted")
    finally:
        bad.shutdown()


@check("idle_started")
def _() -> None:
    sock = socket.create_connection((HOST, IMAP_PORT), timeout=10)
    read_until(sock, rb"^\* OK.*\r\n", 10)
    sock.sendall(b"a LOGIN alice " + USERS["alice"].encode() + b"\r\n")
    read_until(sock, rb"\r\na OK|^a OK", 10)
    sock.sendall(b"b SELECT INBOX\r\n")
    selected = read_until(sock, rb"\r\nb OK", 10)
    exists = re.search(rb"\* (\d+) EXISTS", selected)
    assert exists, selected
    sock.sendall(b"c IDLE\r\n")
    read_until(sock, rb"\+ [^\r]*\r\n", 10)
    state["idle"] = sock
    state["exists_before"] = int(exists.group(1))


@check("lmtp_delivery")
def _() -> None:
    client = smtplib.LMTP(HOST, LMTP_PORT, timeout=10)
    try:
        refused = client.sendmail("sender@example.org", ["alice@example.org"], MESSAGE)
        assert refused == {}, refused
        client.mail("sender@example.org")
        code, text = client.rcpt("nobody-" + TOKEN + "@example.org")
        assert code == 550, (code, text)  # an unknown recipient is refused at RCPT time
        client.rset()
    finally:
        client.quit()


@check("idle_sees_delivery")
def _() -> None:
    sock: socket.socket = state["idle"]
    want = state["exists_before"] + 1
    read_until(sock, rb"\* %d EXISTS\r\n" % want, 10)
    sock.sendall(b"DONE\r\n")
    read_until(sock, rb"c OK[^\r]*\r\n", 10)
    sock.sendall(b"d LOGOUT\r\n")
    read_until(sock, rb"d OK", 10)
    sock.close()


@check("imap_reads_message")
def _() -> None:
    client = imap_login("alice")
    try:
        client.select("INBOX", readonly=True)
        typ, fetched = client.fetch("*", "(UID BODY.PEEK[])")  # the newest message
        assert typ == "OK", fetched
        first = fetched[0]
        assert isinstance(first, tuple), fetched
        uid = re.search(rb"UID (\d+)", first[0])
        assert uid, fetched
        body = first[1]
        assert body.startswith(b"Return-Path: <sender@example.org>\r\n"), body[:80]
        assert body.endswith(MESSAGE), body
        typ, status = client.status("INBOX", "(UIDVALIDITY)")
        validity = re.search(rb"UIDVALIDITY (\d+)", status[0])
        assert validity, status
        state["uid"], state["uidvalidity"] = int(uid.group(1)), int(validity.group(1))
    finally:
        client.logout()
    bob = imap_login("bob")
    try:
        typ, status = bob.status("INBOX", "(MESSAGES)")
        assert typ == "OK" and b"MESSAGES 0" in status[0], status  # delivered to alice only
    finally:
        bob.logout()


def events() -> list[dict[str, Any]]:
    """The events notifyd printed (its `log` lines, ``EVENT, , , ,  "{json}"``)."""
    found = []
    if EVENTS_FILE.exists():
        for line in EVENTS_FILE.read_text(encoding="utf-8", errors="replace").splitlines():
            start, end = line.find('"{'), line.rfind('}"')
            if start >= 0 and end > start:
                found.append(json.loads(line[start + 1 : end + 1]))
    return found


@check("notifyd_printed_message_new")
def _() -> None:
    deadline = time.monotonic() + 20
    while True:
        mine = [e for e in events() if MESSAGE_ID in e.get("vnd.cmu.midset", [])]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine, f"no event for {MESSAGE_ID} in {EVENTS_FILE}; last: {events()[-3:]}"
    assert [e["event"] for e in mine] == ["MessageNew"], mine
    event = mine[0]
    assert event["user"] == "alice", event
    assert event["service"] == "lmtp", event
    assert event["uri"].startswith("imap://alice@"), event
    if "uid" in state:
        assert event["uri"].endswith(
            f"/INBOX;UIDVALIDITY={state['uidvalidity']}/;UID={state['uid']}"
        ), event
        assert event["uidset"] == str(state["uid"]), event
    assert event["messageSize"] == len(MESSAGE) + len(b"Return-Path: <sender@example.org>\r\n")


def main() -> int:
    return check.run()


if __name__ == "__main__":
    sys.exit(main())
