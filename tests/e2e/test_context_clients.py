"""RFC 5267 contexts with real clients: imapclient (over its imaplib connection for the
ESEARCH forms it does not build itself) receives ADDTO/REMOVEFROM during IDLE, parsed by
its own response parser; and a seeded model check over two sessions: after every round of
random changes by B, A's lists maintained only from ADDTO/REMOVEFROM (RFC 5267 §4.3.2-§4.3.4)
equal what a fresh SEARCH/SORT returns."""

from __future__ import annotations

import random
import re
from typing import Any

import imapclient

from imapd.protocol.connection import Limits
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def _imapclient(server: RunningServer) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    c.login("alice", PASSWORD)
    return c


def test_imapclient_idle_receives_addto_and_removefrom(server: RunningServer) -> None:
    """RFC 5267 §4.3.2: ADDTO/REMOVEFROM "MAY be sent ... when the client is using the IDLE
    facility"; §4.3.3 example shape ``* ESEARCH (TAG "B01") UID ADDTO (0 32768:32769)``."""
    a, b = _imapclient(server), _imapclient(server)
    for n in range(3):
        b.append("INBOX", f"Subject: {n}\r\n\r\nbody\r\n".encode())
    a.select_folder("INBOX")
    typ, _ = a._imap._simple_command("UID", "SEARCH", "RETURN (UPDATE COUNT) FLAGGED")
    assert typ == "OK"
    (initial,) = a._imap.untagged_responses.pop("ESEARCH")
    assert re.fullmatch(rb'\(TAG "[^"]+"\) UID COUNT 0', initial), initial
    b.select_folder("INBOX")
    a.idle()
    b.add_flags([1, 3], [imapclient.FLAGGED])
    seen: list[tuple[object, ...]] = []
    for _ in range(20):
        seen += a.idle_check(timeout=1)
        if any(r and r[0] == b"ESEARCH" for r in seen):
            break
    esearch = [r for r in seen if r and r[0] == b"ESEARCH"]
    # imapclient's parser: (b'ESEARCH', (b'TAG', b'<tag>'), b'UID', b'ADDTO', (0, b'1,3'))
    assert len(esearch) == 1 and esearch[0][2:4] == (b"UID", b"ADDTO"), seen
    assert esearch[0][4] == (0, b"1,3") or esearch[0][4] == (0, b"1:1,3"), esearch
    fetches = [r for r in seen if len(r) > 1 and r[1] == b"FETCH"]
    assert seen.index(fetches[-1]) < seen.index(esearch[0]), seen  # the FETCH first
    b.remove_flags([3], [imapclient.FLAGGED])
    seen = []
    for _ in range(20):
        seen += a.idle_check(timeout=1)
        if any(r and r[0] == b"ESEARCH" for r in seen):
            break
    assert [r[2:] for r in seen if r and r[0] == b"ESEARCH"] == [(b"UID", b"REMOVEFROM", (0, 3))]
    a.idle_done()
    a.logout()
    b.logout()


def _raw(server: RunningServer) -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login("alice", PASSWORD)
    return c


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


def _apply(lists: dict[str, list[int]], line: str) -> None:
    """A client following RFC 5267 §4.3.3/§4.3.4 to the letter."""
    m = re.match(r'\* ESEARCH \(TAG "([^"]+)"\)(?: UID)? (.*)', line)
    assert m, line
    results = lists[m.group(1)]
    for kind, payload in re.findall(r"(ADDTO|REMOVEFROM) \(([^)]*)\)", m.group(2)):
        words = payload.split()
        for pos_text, nums in zip(words[::2], words[1::2], strict=True):
            pos, values = int(pos_text), _expand(nums)
            if kind == "ADDTO":
                if pos == 0:
                    results.extend(values)
                    results.sort()
                else:
                    results[pos - 1 : pos - 1] = values
            elif pos == 0:
                for v in values:
                    results.remove(v)
            else:
                assert results[pos - 1 : pos - 1 + len(values)] == values, (line, results)
                del results[pos - 1 : pos - 1 + len(values)]


def _renumber(lists: dict[str, list[int]], uid_tags: set[str], line: str) -> None:
    """EXPUNGE shifts the sequence numbers a client holds (RFC 3501 §7.4.1)."""
    n = int(line.split()[1])
    for tag, results in lists.items():
        if tag not in uid_tags:
            assert n not in results, (tag, n, results)  # REMOVEFROM came first
            lists[tag] = [v - 1 if v > n else v for v in results]


CONTEXTS = {
    "s1": ("UID SEARCH", "", "FLAGGED"),
    "s2": ("SEARCH", "", "OR UNSEEN KEYWORD $Work"),
    "s3": ("UID SORT", "(SUBJECT REVERSE DATE) UTF-8", "UNDELETED"),
    "s4": ("SORT", "(REVERSE SIZE) UTF-8", "NOT FLAGGED"),
    "s5": ("UID SEARCH", "", 'SUBJECT "red"'),
    "s6": ("SORT", "(FROM ARRIVAL) UTF-8", "ALL"),
}


def _fresh(a: RawClient, tag: str, spec: tuple[str, str, str]) -> list[int]:
    command, criteria, keys = spec
    out = a.ok(f"f{tag}", f"{command} RETURN (ALL) {criteria} {keys}".replace("  ", " "))
    found = [line for line in out if line.startswith("* ESEARCH")]
    m = re.search(r" ALL (\S+)", found[0]) if found else None
    return _expand(m.group(1)) if m else []


def test_model_lists_follow_the_mailbox(server: RunningServer) -> None:
    """Seeded random rounds of appends, flag changes and expunges by B; A answers NOOP and
    applies every ADDTO/REMOVEFROM (and EXPUNGE renumbering) to its lists, which must
    equal a fresh SEARCH/SORT of the same program after each round."""
    rng = random.Random(5267)
    a, b = _raw(server), _raw(server)
    words = ["red", "green", "blue"]

    def append(n: int) -> None:
        day = rng.randint(1, 28)
        subject = f"{rng.choice(words)} {rng.randint(0, 3)}"
        body = "x" * rng.randint(0, 300)
        sender = rng.choice(["ann", "bob", "cat"])
        b.append(
            f"b{n}",
            "INBOX",
            f"From: {sender}@example.org\r\nSubject: {subject}\r\n"
            f"Date: {day} Feb 2024 10:00 +0000\r\n\r\n{body}\r\n",
        )

    for n in range(12):
        append(n)
    a.ok("a0", "SELECT INBOX")
    b.ok("b0", "SELECT INBOX")
    lists: dict[str, list[int]] = {}
    uid_tags = {t for t, (cmd, _, _) in CONTEXTS.items() if cmd.startswith("UID")}
    for tag, (command, criteria, keys) in CONTEXTS.items():
        line = f"{command} RETURN (UPDATE ALL) {criteria} {keys}".replace("  ", " ")
        out = a.ok(tag, line)
        lists[tag] = _fresh_from(out)
    serial = 100
    told = {"ESEARCH": 0, "EXPUNGE": 0}
    for _round in range(25):
        for _ in range(rng.randint(1, 4)):
            serial += 1
            action = rng.random()
            count = int(b.ok(f"c{serial}", "STATUS INBOX (MESSAGES)")[0].split()[-1][:-1])
            if action < 0.35 or count < 3:
                append(serial)
            elif action < 0.8:
                n = rng.randint(1, count)
                flag = rng.choice(["\\Flagged", "\\Seen", "$Work", "\\Deleted"])
                sign = rng.choice("+-")
                b.ok(f"d{serial}", f"STORE {n} {sign}FLAGS.SILENT ({flag})")
            else:
                n = rng.randint(1, count)
                uid = b.ok(f"u{serial}", f"FETCH {n} (UID)")[0].split()[4].rstrip(")")
                b.ok(f"x{serial}", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
                b.ok(f"e{serial}", f"UID EXPUNGE {uid}")
        for line in a.ok(f"n{_round}", "NOOP")[:-1]:
            if line.startswith("* ESEARCH"):
                _apply(lists, line)
                told["ESEARCH"] += 1
            elif line.endswith(" EXPUNGE"):
                _renumber(lists, uid_tags, line)
                told["EXPUNGE"] += 1
        for tag, spec in CONTEXTS.items():
            assert lists[tag] == _fresh(a, tag + str(_round), spec), (tag, _round)
    assert told["ESEARCH"] > 40 and told["EXPUNGE"] > 3, told  # the run exercised both


def _fresh_from(out: list[str]) -> list[int]:
    m = re.search(r" ALL (\S+)", out[0]) if out[0].startswith("* ESEARCH") else None
    return _expand(m.group(1)) if m else []


def test_limit_is_configurable_and_contexts_end_with_the_mailbox(server_factory: Any) -> None:
    """RFC 5267 §4.3.1 with ``[limits] max_update_contexts = 1`` (the least §4.3.1 allows:
    "Servers MUST provide at least one updating context per client"): the second UPDATE
    gets ``* NO [NOUPDATE "tag"]`` with its other return options honoured, and a SORT is
    refused alike; after UNSELECT (§4.3: "Updates will cease when the mailbox is no longer
    selected") the tag is free, CANCELUPDATE needs a selected mailbox, and nothing is sent."""
    running = server_factory(limits=Limits(max_update_contexts=1))
    running.add_user("alice")
    a, b = _raw(running), _raw(running)
    b.append("b1", "INBOX", "Subject: 1\r\n\r\n")
    a.ok("a1", "SELECT INBOX")
    assert a.ok("u1", "SEARCH RETURN (UPDATE) ALL")[0] == '* ESEARCH (TAG "u1")'
    out = a.ok("u2", "SEARCH RETURN (UPDATE COUNT) ALL")
    assert out[:2] == [
        '* ESEARCH (TAG "u2") COUNT 1',
        '* NO [NOUPDATE "u2"] Too many contexts (limit 1)',
    ]
    out = a.ok("u3", "UID SORT RETURN (UPDATE MIN) (DATE) UTF-8 ALL")
    assert out[:2] == [
        '* ESEARCH (TAG "u3") UID MIN 1',
        '* NO [NOUPDATE "u3"] Too many contexts (limit 1)',
    ]
    assert a.command("u4", 'CANCELUPDATE "u2"')[-1].startswith("u4 NO"), "u2 was refused"
    a.ok("a2", "UNSELECT")
    assert a.command("a3", 'CANCELUPDATE "u1"')[-1].startswith("a3 BAD")
    a.ok("a4", "SELECT INBOX")
    b.append("b2", "INBOX", "Subject: 2\r\n\r\n")
    out = a.ok("a5", "NOOP")
    assert not [line for line in out if "ESEARCH" in line], out
    assert a.ok("u1", "SEARCH RETURN (UPDATE) ALL")[0] == '* ESEARCH (TAG "u1")'  # tag free
