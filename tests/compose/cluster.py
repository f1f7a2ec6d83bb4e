"""docker-compose.cluster.yml's test, run inside its `tests` container (stdlib only).

Two imapd instances share one PostgreSQL store. Over the compose network, by service name:
wait (bounded) for both greetings; a session on instance B IDLEs in alice's INBOX and
another on B has NOTIFY set for her personal mailboxes; a message is delivered by LMTP
through instance A; B's IDLE is pushed the EXISTS and B's NOTIFY session the STATUS, and B
reads the message back. Then an APPEND and a STORE through A are seen on B with the UID A
gave and the flags A set, and both instances report the same UIDVALIDITY, UIDNEXT and
HIGHESTMODSEQ. Prints one ``name: ok|FAIL`` line per check and a bare ``N passed, N failed``
line; exits 1 when a check failed. Not collected by pytest (tests/test_compose_cluster.py).

Environment: DELIVER_HOST (imapd-a), READ_HOST (imapd-b), IMAP_PORT (1143), LMTP_PORT
(2424), IMAP_USERS (alice:secret,bob:secret), WAIT_SECONDS (60).
"""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import socket
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # mypy and ruff see the repository's package
    from tests.compose.checks import Checks, read_until, say, wait_for_banner
else:  # the tests container runs this file from /opt/tests, where checks.py sits beside it
    from checks import Checks, read_until, say, wait_for_banner

A = os.environ.get("DELIVER_HOST", "imapd-a")
B = os.environ.get("READ_HOST", "imapd-b")
IMAP_PORT = int(os.environ.get("IMAP_PORT", "1143"))
LMTP_PORT = int(os.environ.get("LMTP_PORT", "2424"))
USERS = dict(
    entry.split(":", 1)
    for entry in os.environ.get("IMAP_USERS", "alice:secret,bob:secret").split(",")
)
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "60"))
PUSH_SECONDS = 10.0  # generous for a loaded CI machine; the measured time is printed

TOKEN = uuid.uuid4().hex
MESSAGE = (
    "From: Sender <sender@example.org>\r\n"
    "To: Alice <alice@example.org>\r\n"
    f"Subject: cluster {TOKEN}\r\n"
    f"Message-ID: <cluster-{TOKEN}@example.org>\r\n"
    "\r\n"
    f"delivered through instance A, read on instance B ({TOKEN})\r\n"
).encode()
APPENDED = MESSAGE.replace(b"delivered through", b"appended through")

check = Checks()
state: dict[str, Any] = {}


def raw_session(host: str, user: str) -> socket.socket:
    sock = socket.create_connection((host, IMAP_PORT), timeout=10)
    read_until(sock, rb"^\* OK.*\r\n", 10)
    sock.sendall(b"a LOGIN " + user.encode() + b" " + USERS[user].encode() + b"\r\n")
    read_until(sock, rb"(^|\r\n)a OK", 10)
    return sock


def imap_login(host: str, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(host, IMAP_PORT, timeout=10)
    client.login(user, USERS[user])
    return client


def status(host: str) -> dict[str, int]:
    client = imap_login(host, "alice")
    try:
        typ, data = client.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
        assert typ == "OK", data
        return {k.decode(): int(v) for k, v in re.findall(rb"([A-Z]+) (\d+)", data[0])}
    finally:
        client.logout()


@check("both_instances_greet")
def _() -> None:
    for host in (A, B):
        assert b"IMAP4rev1" in wait_for_banner(host, IMAP_PORT, b"* OK", WAIT_SECONDS)
    assert b"LMTP" in wait_for_banner(A, LMTP_PORT, b"220", WAIT_SECONDS)


@check("users_log_in_on_both")
def _() -> None:
    for host in (A, B):
        for user in USERS:
            client = imap_login(host, user)
            assert client.select("INBOX")[0] == "OK"
            client.logout()


@check("b_idles_and_notifies")
def _() -> None:
    idle = raw_session(B, "alice")
    idle.sendall(b"b SELECT INBOX\r\n")
    selected = read_until(idle, rb"\r\nb OK", 10)
    exists = re.search(rb"\* (\d+) EXISTS", selected)
    assert exists, selected
    idle.sendall(b"c IDLE\r\n")
    read_until(idle, rb"\+ [^\r]*\r\n", 10)
    notify = raw_session(B, "alice")
    notify.sendall(b"n NOTIFY SET (personal (MessageNew MessageExpunge))\r\n")
    read_until(notify, rb"(^|\r\n)n OK", 10)
    state.update(idle=idle, notify=notify, exists=int(exists.group(1)))


@check("lmtp_delivery_through_a")
def _() -> None:
    client = smtplib.LMTP(A, LMTP_PORT, timeout=10)
    try:
        refused = client.sendmail("sender@example.org", ["alice@example.org"], MESSAGE)
        state["delivered_at"] = time.monotonic()  # A acknowledged (committed) the delivery
        assert refused == {}, refused
    finally:
        client.quit()


@check("idle_on_b_pushed")
def _() -> None:
    sock: socket.socket = state["idle"]
    read_until(sock, rb"\* %d EXISTS\r\n" % (state["exists"] + 1), PUSH_SECONDS)
    waited = 1000 * (time.monotonic() - state["delivered_at"])
    say(f"  B's IDLE had the EXISTS {waited:.0f} ms after A acknowledged the delivery")
    sock.sendall(b"DONE\r\n")
    read_until(sock, rb"c OK[^\r]*\r\n", 10)
    sock.sendall(b"d LOGOUT\r\n")
    sock.close()


@check("notify_on_b_pushed")
def _() -> None:
    sock: socket.socket = state["notify"]
    got = read_until(sock, rb"\* STATUS \"?INBOX\"? \([^)]*\)\r\n", PUSH_SECONDS)
    messages = re.search(rb"MESSAGES (\d+)", got)
    assert messages and int(messages.group(1)) == state["exists"] + 1, got
    sock.sendall(b"z LOGOUT\r\n")
    sock.close()


@check("b_reads_the_delivery")
def _() -> None:
    client = imap_login(B, "alice")
    try:
        client.select("INBOX", readonly=True)
        typ, fetched = client.fetch("*", "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(fetched[0], tuple), fetched
        assert fetched[0][1].endswith(MESSAGE), fetched[0][1][-200:]
    finally:
        client.logout()


@check("append_and_store_on_a_seen_on_b")
def _() -> None:
    a = imap_login(A, "alice")
    try:
        typ, data = a.append("INBOX", "", imaplib.Time2Internaldate(time.time()), APPENDED)
        assert typ == "OK", data
        code = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        assert code, data
        uid = int(code.group(2))
        a.select("INBOX")
        typ, data = a.uid("STORE", str(uid), "+FLAGS", "(\\Flagged $Cluster)")
        assert typ == "OK", data
    finally:
        a.logout()
    b = imap_login(B, "alice")
    try:
        b.select("INBOX", readonly=True)
        typ, fetched = b.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
        assert typ == "OK" and isinstance(fetched[0], tuple), fetched
        assert b"\\Flagged" in fetched[0][0] and b"$Cluster" in fetched[0][0], fetched[0][0]
        assert fetched[0][1] == APPENDED
    finally:
        b.logout()
    state["uidvalidity"] = int(code.group(1))


@check("same_mailbox_state_on_both")
def _() -> None:
    on_a, on_b = status(A), status(B)
    assert on_a == on_b, (on_a, on_b)
    assert on_a["UIDVALIDITY"] == state["uidvalidity"], on_a


def main() -> int:
    return check.run()


if __name__ == "__main__":
    sys.exit(main())
