"""WITHIN (RFC 5032) end to end: messages APPENDed with INTERNALDATEs in the past, found by
OLDER and YOUNGER (seconds before the server's current time) in SEARCH, UID SEARCH, inside
OR and NOT, and with ESEARCH RETURN options, over a raw socket to a real server."""

from __future__ import annotations

import datetime as dt
import time

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_time(epoch: int, offset_hours: int) -> str:
    """An RFC 3501 date-time for ``epoch`` written in a +hh00 / -hh00 zone."""
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    d = dt.datetime.fromtimestamp(epoch, zone)
    sign = "+" if offset_hours >= 0 else "-"
    return (
        f'"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year} {d:%H:%M:%S} {sign}{abs(offset_hours):02d}00"'
    )


def append(r: RawClient, tag: str, epoch: int, offset_hours: int, subject: str) -> None:
    body = f"Subject: {subject}\r\n\r\nbody\r\n"
    r.send(f"{tag} APPEND INBOX {date_time(epoch, offset_hours)} {{{len(body)}+}}\r\n{body}\r\n")
    resp = r.until_tagged(tag)
    assert resp[-1].startswith(f"{tag} OK"), resp


def found(lines: list[str], tag: str) -> list[int]:
    assert lines[-1].startswith(f"{tag} OK"), lines
    (hit,) = [line for line in lines if line.startswith("* SEARCH")]
    return [int(w) for w in hit.split()[2:]]


def test_older_younger(server: RunningServer) -> None:
    r = RawClient.connect(server.host, server.port)
    r.login("alice", PASSWORD)
    caps = r.ok("c", "CAPABILITY")[0].split()
    assert "WITHIN" in caps
    now = int(time.time())
    # 1: ten days old, written in -05:00; 2: two hours old in +02:00; 3: a minute old, UTC.
    append(r, "a1", now - 10 * 86400, -5, "old")
    append(r, "a2", now - 7200, 2, "hours")
    append(r, "a3", now - 60, 0, "fresh")
    r.ok("s", "SELECT INBOX")
    r.ok("x", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    r.ok("e", "EXPUNGE")  # numbers and UIDs differ from here on: UIDs 2, 3 are numbers 1, 2
    append(r, "a4", now - 30 * 86400, 9, "ancient")  # UID 4, number 3
    r.ok("n", "NOOP")
    # Margins of many minutes around every target: exact whatever the clock does meanwhile.
    assert found(r.command("q1", "SEARCH YOUNGER 3600"), "q1") == [2]
    assert found(r.command("q2", "SEARCH YOUNGER 86400"), "q2") == [1, 2]
    assert found(r.command("q3", "SEARCH OLDER 3600"), "q3") == [1, 3]
    assert found(r.command("q4", "SEARCH OLDER 86400"), "q4") == [3]
    assert found(r.command("q5", "UID SEARCH OLDER 86400"), "q5") == [4]
    assert found(r.command("q6", "UID SEARCH YOUNGER 86400"), "q6") == [2, 3]
    assert found(r.command("q7", f"SEARCH OLDER {40 * 86400}"), "q7") == []
    assert found(r.command("q8", "UID SEARCH YOUNGER 86400 OLDER 600"), "q8") == [2]
    assert found(r.command("q9", "UID SEARCH OR YOUNGER 600 OLDER 864000"), "q9") == [3, 4]
    assert found(r.command("qa", "UID SEARCH NOT YOUNGER 86400"), "qa") == [4]
    assert found(r.command("qb", "SEARCH NOT OLDER 3600 SUBJECT fresh"), "qb") == [2]
    assert r.ok("qc", "UID SEARCH RETURN (MIN MAX COUNT) YOUNGER 86400")[0] == (
        '* ESEARCH (TAG "qc") UID MIN 2 MAX 3 COUNT 2'
    )
    assert r.ok("qd", "SEARCH RETURN (ALL) OLDER 3600")[0] == '* ESEARCH (TAG "qd") ALL 1,3'
    assert r.ok("qe", "SEARCH RETURN (COUNT) OLDER 4294967295")[0] == (
        '* ESEARCH (TAG "qe") COUNT 0'
    )
    for bad in (
        "SEARCH OLDER",
        "SEARCH YOUNGER 0",
        "SEARCH OLDER -1",
        "SEARCH YOUNGER x",
        "SEARCH OLDER 4294967296",
        "UID SEARCH OR OLDER 5",
    ):
        assert r.command("b", bad)[-1].startswith("b BAD"), bad
    r.ok("z", "LOGOUT")
    r.close()


def test_boundary_second_matches_both(server: RunningServer) -> None:
    """RFC 5032 §2: at the target second itself OLDER ("less recent than or equal to") and
    YOUNGER ("more recent than or equal to") both match. The interval is computed from the
    client's clock just before the SEARCH; an attempt that straddled a second boundary is not
    evidence either way and is repeated."""
    r = RawClient.connect(server.host, server.port)
    r.login("alice", PASSWORD)
    then = int(time.time()) - 500
    append(r, "a1", then, 0, "target")
    append(r, "a2", then - 1, 0, "second before")
    append(r, "a3", then + 1, 0, "second after")
    r.ok("s", "SELECT INBOX")
    for _attempt in range(20):
        start = int(time.time())
        interval = start - then
        both = r.command("q", f"SEARCH OLDER {interval} YOUNGER {interval}")
        older = r.command("o", f"SEARCH OLDER {interval}")
        younger = r.command("y", f"SEARCH YOUNGER {interval}")
        if int(time.time()) != start:
            continue
        assert found(both, "q") == [1]
        assert found(older, "o") == [1, 2]
        assert found(younger, "y") == [1, 3]
        break
    else:
        raise AssertionError("never one whole second for three SEARCHes")
    r.close()
