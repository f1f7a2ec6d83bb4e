"""CONDSTORE and QRESYNC (RFC 7162) end to end: imapclient where it speaks them, a raw
socket for SELECT (QRESYNC ...), and a resync after 1,000 random changes checked exactly
against an independent model of the mailbox."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

FLAG_POOL = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Label1", "$Label2")


def raw(server: RunningServer, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login(user, PASSWORD)
    return c


def message(n: int) -> bytes:
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n)


def status_modseq(c: imapclient.IMAPClient, folder: str) -> int:
    return int(c.folder_status(folder, [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"])


def modseqs(c: imapclient.IMAPClient, uids: list[int]) -> dict[int, int]:
    return {uid: data[b"MODSEQ"][0] for uid, data in c.fetch(uids, ["MODSEQ"]).items()}


# --- parsing the raw responses of a resync ----------------------------------------------
_FETCH = re.compile(r"^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\) MODSEQ \((\d+)\)\)$")
_CODE = re.compile(r"^\* OK \[(UIDVALIDITY|HIGHESTMODSEQ|UIDNEXT) (\d+)\]")


def uid_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def compress(uids: set[int] | list[int]) -> str:
    ranges: list[list[int]] = []
    for u in sorted(uids):
        if ranges and ranges[-1][1] == u - 1:
            ranges[-1][1] = u
        else:
            ranges.append([u, u])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


@dataclass
class Resync:
    codes: dict[str, int] = field(default_factory=dict)
    vanished: set[int] = field(default_factory=set)
    earlier_count: int = 0
    fetched: dict[int, tuple[frozenset[str], int]] = field(default_factory=dict)
    tagged: str = ""


def parse_select(lines: list[str]) -> Resync:
    out = Resync(tagged=lines[-1])
    for line in lines[:-1]:
        if m := _CODE.match(line):
            out.codes[m.group(1)] = int(m.group(2))
        elif line.startswith("* VANISHED (EARLIER) "):
            out.earlier_count += 1
            out.vanished |= uid_set(line.removeprefix("* VANISHED (EARLIER) "))
        elif m := _FETCH.match(line):
            flags = frozenset(m.group(3).split()) - {"\\Recent"}
            out.fetched[int(m.group(2))] = (flags, int(m.group(4)))
        else:
            assert not line.startswith(("* VANISHED", "* BAD", "* NO")), line
    return out


# --- basics through imapclient ----------------------------------------------------------
def test_capabilities_and_enable(server: RunningServer) -> None:
    c = client(server)
    caps = c.capabilities()
    for cap in (b"CONDSTORE", b"QRESYNC", b"ENABLE", b"ESEARCH", b"SEARCHRES", b"SAVEDATE"):
        assert cap in caps
    assert c.enable("QRESYNC") == [b"QRESYNC"]
    assert c.enable("CONDSTORE", "QRESYNC") == []  # implied and already on
    c.append("INBOX", message(1))
    info = c.select_folder("INBOX")
    assert info[b"HIGHESTMODSEQ"] == status_modseq(c, "INBOX")
    c.logout()


def test_select_reports_highestmodseq_before_and_after_enabling(server: RunningServer) -> None:
    """RFC 7162 §3.1.2.1 requires [HIGHESTMODSEQ] once CONDSTORE is enabled and does not
    forbid it before: sent on every SELECT/EXAMINE (as Cyrus), the same value either way;
    a plain FETCH still carries no MODSEQ until the client asks (issue 16 item 13)."""
    c = client(server)
    c.append("INBOX", message(1))
    plain = c.select_folder("INBOX")[b"HIGHESTMODSEQ"]
    assert c.select_folder("INBOX", readonly=True)[b"HIGHESTMODSEQ"] == plain
    assert c.fetch([1], ["FLAGS"])[1].keys() == {b"FLAGS", b"SEQ"}
    c.fetch([1], ["MODSEQ"])  # an enabling command (RFC 7162 §3.1)
    assert c.select_folder("INBOX", readonly=True)[b"HIGHESTMODSEQ"] == plain
    assert plain == status_modseq(c, "INBOX")
    c.logout()


def test_modseq_kept_on_every_change(server: RunningServer) -> None:
    """RFC 7162 §3.1, §3.2: APPEND, COPY, MOVE, flag changes and expunges each give a new
    mod-sequence, higher than any before; an expunge is remembered with it."""
    c = client(server)
    c.enable("QRESYNC")
    c.append("INBOX", message(1))
    c.append("INBOX", message(2))
    c.append("INBOX", message(3))
    start = c.select_folder("INBOX")[b"HIGHESTMODSEQ"]
    before = modseqs(c, [1, 2, 3])
    assert max(before.values()) == start

    c.add_flags([1], [b"\\Flagged"])
    after = modseqs(c, [1, 2, 3])
    assert after[1] > start
    assert after[2] == before[2] and after[3] == before[3]
    assert status_modseq(c, "INBOX") == after[1]
    c.add_flags([1], [b"\\Flagged"])  # no change, no new mod-sequence (§3.1.11)
    assert modseqs(c, [1])[1] == after[1]
    assert status_modseq(c, "INBOX") == after[1]

    c.append("INBOX", message(4))
    appended = modseqs(c, [4])[4]
    assert appended > after[1] and status_modseq(c, "INBOX") == appended

    archive_before = status_modseq(c, "Archive")
    c.copy([2], "Archive")
    archive_after = status_modseq(c, "Archive")
    assert archive_after > archive_before
    assert status_modseq(c, "INBOX") == appended  # the source is unchanged by COPY

    c.move([3], "Archive")
    moved_at = status_modseq(c, "INBOX")
    assert moved_at > appended
    assert status_modseq(c, "Archive") > archive_after

    c.add_flags([4], [b"\\Deleted"])
    flagged_at = status_modseq(c, "INBOX")
    c.expunge()
    expunged_at = status_modseq(c, "INBOX")
    assert expunged_at > flagged_at > moved_at

    # Both removals are remembered with their own mod-sequence (§3.2.5.1).
    found = c.fetch([1, 2], ["FLAGS"], modifiers=[f"CHANGEDSINCE {moved_at - 1}", "VANISHED"])
    assert set(found) == set()  # 1 and 2 did not change since
    r = raw(server)
    r.command("e", "ENABLE QRESYNC")
    r.command("s", "EXAMINE INBOX")
    lines = r.command("f", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {moved_at - 1} VANISHED)")
    assert lines[0] == "* VANISHED (EARLIER) 3:4", lines
    lines = r.command("f", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {moved_at} VANISHED)")
    assert lines[0] == "* VANISHED (EARLIER) 4", lines
    r.close()
    c.logout()


def test_changedsince_and_search_modseq(server: RunningServer) -> None:
    c = client(server)
    for n in range(1, 6):
        c.append("INBOX", message(n))
    c.select_folder("INBOX")
    base = status_modseq(c, "INBOX")
    c.add_flags([2, 4], [b"$Seen2"])
    changed = c.fetch([1, 2, 3, 4, 5], ["FLAGS"], modifiers=[f"CHANGEDSINCE {base}"])
    assert set(changed) == {2, 4}
    assert all(d[b"MODSEQ"][0] > base for d in changed.values())
    found = c.search(["MODSEQ", base + 1])
    assert list(found) == [2, 4]
    assert found.modseq == status_modseq(c, "INBOX")
    nothing = c.search(["MODSEQ", base + 100])
    assert list(nothing) == [] and nothing.modseq is None
    c.logout()


def test_unchangedsince_conflict_between_sessions(server: RunningServer) -> None:
    """RFC 7162 §3.1.3: the second of two conditional stores from the same base fails
    with MODIFIED and changes nothing."""
    a, b = client(server), client(server)
    a.append("INBOX", message(1))
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    base = modseqs(a, [1])[1]
    ra, rb = raw(server), raw(server)
    ra.command("s", "SELECT INBOX")
    rb.command("s", "SELECT INBOX")
    first = ra.command("x", f"UID STORE 1 (UNCHANGEDSINCE {base}) +FLAGS.SILENT ($A)")
    assert first[-1] == "x OK STORE completed", first
    second = rb.command("y", f"UID STORE 1 (UNCHANGEDSINCE {base}) +FLAGS.SILENT ($B)")
    assert second[-1] == "y OK [MODIFIED 1] Conditional STORE failed", second
    flags = a.get_flags([1])[1]
    assert b"$A" in flags and b"$B" not in flags
    for c in (ra, rb):
        c.close()
    a.logout()
    b.logout()


# --- other sessions' changes ----------------------------------------------------------------
def test_flag_change_elsewhere_arrives_with_modseq(server: RunningServer) -> None:
    """RFC 7162 §3.1.4.2 example 14, and in IDLE."""
    a, b = client(server), client(server)
    for n in range(1, 4):
        a.append("INBOX", message(n))
    a.enable("CONDSTORE")
    a.select_folder("INBOX", readonly=True)
    b.select_folder("INBOX")
    b.add_flags([2], [b"\\Answered"])
    reply = a.noop()
    fetches = [r for r in reply[1] if r[1] == b"FETCH"]
    uid_modseq = modseqs(b, [2])[2]
    assert fetches == [
        (2, b"FETCH", (b"UID", 2, b"FLAGS", (b"\\Answered", b"\\Recent"), b"MODSEQ", (uid_modseq,)))
    ]
    a.idle()
    b.add_flags([3], [b"\\Flagged"])
    got = a.idle_check(5)
    a.idle_done()
    assert got == [
        (
            3,
            b"FETCH",
            (b"UID", 3, b"FLAGS", (b"\\Flagged", b"\\Recent"), b"MODSEQ", (modseqs(b, [3])[3],)),
        )
    ]
    a.logout()
    b.logout()


def test_expunge_elsewhere_is_vanished_in_idle(server: RunningServer) -> None:
    a, b = client(server), client(server)
    for n in range(1, 6):
        a.append("INBOX", message(n))
    a.enable("QRESYNC")
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    b.add_flags([2, 3, 5], [b"\\Deleted"], silent=True)
    a.idle()
    b.expunge()
    got = a.idle_check(5)
    while not any(r[0] == b"VANISHED" for r in got):
        got += a.idle_check(5)
    a.idle_done()
    vanished = [r for r in got if r[0] == b"VANISHED"]
    assert len(vanished) == 1
    assert b"EXPUNGE" not in {r[1] for r in got if len(r) > 1}
    assert list(a.search()) == [1, 4]
    assert a.fetch([1, 4], ["FLAGS"]) == {
        1: {b"SEQ": 1, b"FLAGS": (b"\\Recent",)},
        4: {b"SEQ": 2, b"FLAGS": (b"\\Recent",)},
    }
    a.logout()
    b.logout()


def test_store_elsewhere_racing_own_store_ends_with_newest_flags(server: RunningServer) -> None:
    """An older change from elsewhere must not be echoed after this session's own newer
    answer for the same message (it would undo it in the client's cache)."""
    a = raw(server)
    b = client(server)
    b.append("INBOX", message(1))
    a.command("e", "ENABLE CONDSTORE")
    a.command("s", "SELECT INBOX")
    b.select_folder("INBOX")
    for i in range(20):
        b.add_flags([1], [f"$B{i}".encode()], silent=True)
        lines = a.command(f"t{i}", f"STORE 1 +FLAGS.SILENT ($A{i})")
        fetches = [ln for ln in lines if " FETCH " in ln]
        last = fetches[-1]
        assert f"$A{i}" in last or "FLAGS" not in last, lines
        modseq = int(re.findall(r"MODSEQ \((\d+)\)", last)[0])
        assert modseq == max(int(x) for f in fetches for x in re.findall(r"MODSEQ \((\d+)\)", f))
    a.close()
    b.logout()


# --- QRESYNC resync ---------------------------------------------------------------------------
@dataclass
class Model:
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    assigned: set[int] = field(default_factory=set)


def apply_flags(model: Model, uids: list[int], mode: str, flags: set[str]) -> None:
    for uid in uids:
        old = model.flags[uid]
        new = old | flags if mode == "+" else old - flags if mode == "-" else frozenset(flags)
        if new != old:
            model.touched.add(uid)
            model.flags[uid] = frozenset(new)


def append_fast(r: RawClient, flags: set[str], content: bytes) -> int:
    """APPEND with a LITERAL+ in one write (imaplib waits for "+" and then meets delayed
    ACKs: ~40 ms per message); returns the new UID."""
    r.send(
        b"ap APPEND INBOX (%s) {%d+}\r\n%s\r\n"
        % (" ".join(sorted(flags)).encode(), len(content), content)
    )
    tagged = r.until_tagged("ap")[-1]
    return int(re.findall(r"APPENDUID \d+ (\d+)", tagged)[0])


def random_changes(
    c: imapclient.IMAPClient, r: RawClient, model: Model, rng: random.Random, n: int
) -> None:
    """``n`` changes (appends, flag changes, expunges), applied to the model as well."""
    counts = {"append": 0, "flags": 0, "expunge": 0}
    for _ in range(n):
        kind = rng.choices(["append", "flags", "expunge"], weights=[2, 6, 2])[0]
        live = sorted(model.flags)
        if kind != "append" and not live:
            kind = "append"
        counts[kind] += 1
        if kind == "append":
            flags = set(rng.sample(FLAG_POOL, rng.randint(0, 2)))
            uid = append_fast(r, flags, message(len(model.assigned) + 1))
            c.noop()  # the writer's session learns of it (its UID commands only see known UIDs)
            model.flags[uid] = frozenset(flags)
            model.assigned.add(uid)
        elif kind == "flags":
            uids = rng.sample(live, min(len(live), rng.randint(1, 4)))
            flags = set(rng.sample(FLAG_POOL, rng.randint(1, 2)))
            mode = rng.choice(["+", "-", ""])
            encoded = [f.encode() for f in sorted(flags)]
            if mode == "+":
                c.add_flags(uids, encoded, silent=True)
            elif mode == "-":
                c.remove_flags(uids, encoded, silent=True)
            else:
                c.set_flags(uids, encoded, silent=True)
            apply_flags(model, uids, mode, flags)
        else:
            uids = rng.sample(live, min(len(live), rng.randint(1, 3)))
            c.add_flags(uids, [b"\\Deleted"], silent=True)
            c.uid_expunge(uids)
            for uid in uids:
                del model.flags[uid]
    assert min(counts.values()) > n // 20, counts


def current_state(server: RunningServer) -> dict[int, frozenset[str]]:
    r = raw(server)
    r.command("s", "EXAMINE INBOX")
    lines = r.command("f", "UID FETCH 1:* (FLAGS)")
    r.close()
    out: dict[int, frozenset[str]] = {}
    for line in lines[:-1]:
        m = re.match(r"^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$", line)
        assert m, line
        out[int(m.group(1))] = frozenset(m.group(2).split()) - {"\\Recent"}
    return out


def test_qresync_after_1000_changes(server_factory: Any) -> None:
    # synchronous=NORMAL: 2,000 commits without an fsync each (durability is not the point)
    server: RunningServer = server_factory(sqlite_synchronous="NORMAL")
    server.add_user("alice")
    rng = random.Random(7162)
    writer = client(server)
    writer.enable("CONDSTORE")
    writer.select_folder("INBOX")
    appender = raw(server)
    model = Model()
    random_changes(writer, appender, model, rng, 200)

    # The client's cache: a full sync, then it goes offline.
    cache = current_state(server)
    assert cache == model.flags
    r = raw(server)
    r.command("e", "ENABLE QRESYNC")
    first = parse_select(r.command("s", "SELECT INBOX"))
    uidvalidity, hms = first.codes["UIDVALIDITY"], first.codes["HIGHESTMODSEQ"]
    r.close()
    model.touched.clear()
    assigned_before = set(model.assigned)

    random_changes(writer, appender, model, rng, 1000)
    now = current_state(server)
    assert now == model.flags  # the model agrees with the server

    # Resync with the cached UIDs as known-uids: exact, nothing more, nothing less.
    r = raw(server)
    r.command("e", "ENABLE QRESYNC")
    known = compress(set(cache))
    got = parse_select(r.command("s", f"SELECT INBOX (QRESYNC ({uidvalidity} {hms} {known}))"))
    assert got.tagged.endswith("OK [READ-WRITE] SELECT completed"), got.tagged
    assert got.earlier_count <= 1
    assert got.vanished == set(cache) - set(now)
    assert set(got.fetched) == model.touched & set(cache) & set(now)
    for uid, (flags, modseq) in got.fetched.items():
        assert flags == now[uid]
        assert hms < modseq <= got.codes["HIGHESTMODSEQ"]
    # Applying the resync and fetching the new arrivals gives the server's state.
    synced = {u: f for u, f in cache.items() if u not in got.vanished}
    synced.update({u: f for u, (f, _) in got.fetched.items()})
    top = max(cache)
    lines = r.command("n", f"UID FETCH {top + 1}:* (FLAGS)")
    for line in lines[:-1]:
        m = re.match(r"^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$", line)
        if m and int(m.group(1)) > top:
            synced[int(m.group(1))] = frozenset(m.group(2).split()) - {"\\Recent"}
    assert synced == now
    r.close()

    # Without known-uids the client knows 1:<UIDNEXT-1>: every UID removed since, and
    # every message changed or added since.
    r = raw(server)
    r.command("e", "ENABLE QRESYNC")
    got = parse_select(r.command("s", f"EXAMINE INBOX (QRESYNC ({uidvalidity} {hms}))"))
    assert got.vanished == model.assigned - set(now) - (assigned_before - set(cache))
    new = model.assigned - assigned_before
    assert set(got.fetched) == (model.touched | new) & set(now)
    r.close()
    appender.close()
    writer.logout()


def test_qresync_resync_of_expunges_elsewhere_after_snapshot(server: RunningServer) -> None:
    """A message expunged while the resync runs is reported once, by VANISHED after the
    SELECT, never also as VANISHED (EARLIER)."""
    c = client(server)
    for n in range(1, 4):
        c.append("INBOX", message(n))
    c.select_folder("INBOX")
    r = raw(server)
    r.command("e", "ENABLE QRESYNC")
    lines = r.command("s", "SELECT INBOX (QRESYNC (1 1))")  # wrong UIDVALIDITY: plain
    assert not [ln for ln in lines if "VANISHED" in ln or "FETCH" in ln], lines
    uidvalidity = parse_select(lines).codes["UIDVALIDITY"]
    c.add_flags([2], [b"\\Deleted"], silent=True)
    c.expunge()
    lines = r.command("x", f"SELECT INBOX (QRESYNC ({uidvalidity} 1))")
    assert "* VANISHED (EARLIER) 2" in lines
    assert not [ln for ln in lines if ln.startswith("* VANISHED 2")]
    r.close()
    c.logout()


def test_qresync_requires_enable(server: RunningServer) -> None:
    c = client(server)
    c.append("INBOX", message(1))
    r = raw(server)
    assert r.command("s", "SELECT INBOX (QRESYNC (1 1))")[-1].startswith("s BAD")
    assert r.command("f", "FETCH 1 (FLAGS)")[-1].startswith("f BAD")  # nothing selected
    r.close()
    c.select_folder("INBOX")
    with pytest.raises(IMAPClientError):
        c.fetch([1], ["FLAGS"], modifiers=["CHANGEDSINCE 1", "VANISHED"])
    c.logout()
