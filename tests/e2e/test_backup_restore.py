"""``imapd backup`` while writers run and ``imapd restore`` (issue 14 #7): a restored store
never hands out again a UID a client saw for another message under the same UIDVALIDITY,
and the change_log sequence does not go back below what event consumers saw."""

from __future__ import annotations

import imaplib
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from imapd.cli.backup import EXIT_IN_USE
from tests.e2e.process import Proc, imapd

MAILBOXES = ("INBOX", "A", "B")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


@dataclass
class Writer:
    """Appends round-robin to MAILBOXES until stopped, remembering what clients were told:
    (mailbox, UIDVALIDITY, UID) -> Message-ID."""

    proc: Proc
    seen: dict[tuple[str, int, int], str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    count: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            client = self.proc.client()
            while not self.stop.is_set():
                mailbox = MAILBOXES[self.count % len(MAILBOXES)]
                mid = f"<w{self.count}@test>"
                message = f"Subject: w{self.count}\r\nMessage-ID: {mid}\r\n\r\nbody\r\n"
                typ, data = client.append(mailbox, None, None, message.encode())
                assert typ == "OK", data
                found = _APPENDUID.search(data[0])
                assert found is not None, data
                self.seen[(mailbox, int(found[1]), int(found[2]))] = mid
                self.count += 1
            client.logout()
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc

    def wait_for(self, count: int) -> None:
        while self.count < count:
            assert self.error is None, self.error
            self.stop.wait(0.01)


def _message_ids(client: imaplib.IMAP4, mailbox: str) -> tuple[int, dict[int, str]]:
    """The mailbox's UIDVALIDITY and UID -> Message-ID."""
    typ, _ = client.select(mailbox)
    assert typ == "OK"
    given = client.untagged_responses["UIDVALIDITY"][0]
    assert isinstance(given, bytes), given
    uidvalidity = int(given)
    typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out: dict[int, str] = {}
    for part in data:
        if isinstance(part, tuple):
            uid = int(re.search(rb"UID (\d+)", part[0])[1])  # type: ignore[index]
            _, _, value = part[1].decode().partition(":")  # none: the message has no ID
            out[uid] = value.strip()
    return uidvalidity, out


def _head(db_path: Path) -> int:
    db = sqlite3.connect(db_path)
    try:
        return int(db.execute("SELECT max(seq) FROM change_log").fetchone()[0])
    finally:
        db.close()


def _backup_while_writing(proc: Proc, dest: Path) -> Writer:
    proc.start()
    setup = proc.client()
    for name in MAILBOXES[1:]:
        assert setup.create(name)[0] == "OK"
    setup.logout()
    writer = Writer(proc)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        writer.wait_for(30)
        done = imapd("backup", str(dest), data_dir=proc.data_dir)
        assert done.returncode == 0, done.stderr
        at_backup = writer.count
        writer.wait_for(at_backup + 30)  # clients see UIDs the backup lacks
        busy = imapd("restore", str(dest), data_dir=proc.data_dir)
        assert busy.returncode == EXIT_IN_USE and "stop it first" in busy.stderr, busy
    finally:
        writer.stop.set()
        thread.join(30)
    assert writer.error is None, writer.error
    return writer


def _check_no_uid_reused(proc: Proc, writer: Writer) -> dict[str, int]:
    """After the restore: under a UIDVALIDITY clients saw, no UID names another message,
    and new messages get UIDs no client saw. Returns each mailbox's UIDVALIDITY."""
    client = proc.client()
    validities = {}
    for mailbox in MAILBOXES:
        uidvalidity, present = _message_ids(client, mailbox)
        validities[mailbox] = uidvalidity
        seen = {
            uid: mid
            for (mbox, uv, uid), mid in writer.seen.items()
            if mbox == mailbox and uv == uidvalidity
        }
        for uid, mid in present.items():
            assert seen.get(uid, mid) == mid, f"{mailbox} UID {uid} is another message"
        typ, data = client.append(mailbox, None, None, b"Subject: after\r\n\r\nnew\r\n")
        found = _APPENDUID.search(data[0])
        assert typ == "OK" and found is not None
        assert int(found[1]) == uidvalidity
        assert (mailbox, uidvalidity, int(found[2])) not in writer.seen, (
            f"{mailbox}: UID {int(found[2])} handed out again under UIDVALIDITY {uidvalidity}"
        )
    client.logout()
    return validities


def test_restore_over_the_live_store_keeps_uidvalidity_and_never_reuses_a_uid(
    proc: Proc, tmp_path: Path
) -> None:
    dest = tmp_path / "backup.sqlite3"
    writer = _backup_while_writing(proc, dest)
    proc.stop()
    live_head = _head(proc.data_dir / "imapd.sqlite3")
    before = {(m, uv) for m, uv, _ in writer.seen}
    done = imapd("restore", str(dest), data_dir=proc.data_dir)
    assert done.returncode == 0, done.stderr
    assert "kept, UIDNEXT" in done.stdout and "new UIDVALIDITY" not in done.stdout
    proc.start()
    validities = _check_no_uid_reused(proc, writer)
    # The replaced store was readable: each mailbox kept its UIDVALIDITY (no needless
    # resync), and the messages appended after the backup are gone, not renamed.
    assert {(m, uv) for m, uv in validities.items()} == before
    client = proc.client()
    _, present = _message_ids(client, "INBOX")
    client.logout()
    proc.stop()
    seen_inbox = {uid for (m, _, uid) in writer.seen if m == "INBOX"}
    assert max(present) > max(seen_inbox)  # the new message, above every UID seen
    assert set(present) - {max(present)} < seen_inbox
    # New change_log rows continue above the replaced store's last seq.
    db = sqlite3.connect(proc.data_dir / "imapd.sqlite3")
    seqs = [r[0] for r in db.execute("SELECT seq FROM change_log ORDER BY seq")]
    db.close()
    assert [s for s in seqs if s > live_head], "nothing new logged"
    assert not [s for s in seqs if _head(dest) < s <= live_head]
    assert imapd("fsck", data_dir=proc.data_dir).returncode == 0


def test_restore_without_the_live_store_gives_new_uidvalidities(proc: Proc, tmp_path: Path) -> None:
    dest = tmp_path / "backup.sqlite3"
    writer = _backup_while_writing(proc, dest)
    proc.stop()
    # The disaster: the store is gone (a fresh disk, same data directory).
    for path in proc.data_dir.iterdir():
        if path.name.startswith("imapd.sqlite3"):
            path.unlink()
    done = imapd("restore", str(dest), data_dir=proc.data_dir)
    assert done.returncode == 0, done.stderr
    mailboxes = re.search(r"(\d+) mailboxes", done.stdout)
    assert mailboxes is not None and int(mailboxes[1]) >= len(MAILBOXES)
    assert done.stdout.count("new UIDVALIDITY") == int(mailboxes[1])  # every one
    assert "kept, UIDNEXT" not in done.stdout
    proc.start()
    validities = _check_no_uid_reused(proc, writer)
    proc.stop()
    top = max(uv for _, uv, _ in writer.seen)
    assert all(uv > top for uv in validities.values()), (validities, top)
    assert len(set(validities.values())) == len(MAILBOXES)
    # The change_log jumps far above the backup's: seqs the lost store used are not reused.
    db = sqlite3.connect(proc.data_dir / "imapd.sqlite3")
    (low,) = db.execute("SELECT min(seq) FROM change_log WHERE seq > ?", (_head(dest),)).fetchone()
    db.close()
    assert low > _head(dest) + 1_000_000
    assert imapd("fsck", data_dir=proc.data_dir).returncode == 0


def test_restore_over_a_damaged_store_trusts_none_of_its_counters(
    proc: Proc, tmp_path: Path
) -> None:
    dest = tmp_path / "backup.sqlite3"
    writer = _backup_while_writing(proc, dest)
    proc.stop()
    db_path = proc.data_dir / "imapd.sqlite3"
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'contents'").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(db_path, "r+b") as f:  # the mailboxes rows still read; the file is damaged
        f.seek((root - 1) * size)
        f.write(b"\xa5" * size)
    done = imapd("restore", str(dest), data_dir=proc.data_dir)
    assert done.returncode == 0, done.stderr
    assert "unreadable or damaged" in done.stdout and "kept, UIDNEXT" not in done.stdout
    proc.start()
    validities = _check_no_uid_reused(proc, writer)
    proc.stop()
    top = max(uv for _, uv, _ in writer.seen)
    assert all(uv > top for uv in validities.values()), (validities, top)


def test_backup_refuses_to_overwrite_and_restore_refuses_a_damaged_file(
    proc: Proc, tmp_path: Path
) -> None:
    dest = tmp_path / "b.sqlite3"
    assert imapd("backup", str(dest), data_dir=proc.data_dir).returncode == 0
    again = imapd("backup", str(dest), data_dir=proc.data_dir)
    assert again.returncode == 1 and "never overwrite" in again.stderr
    in_dir = imapd("backup", str(tmp_path), data_dir=proc.data_dir)
    assert in_dir.returncode == 0 and "imapd-" in in_dir.stdout
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"garbage" * 1000)
    refused = imapd("restore", str(bad), data_dir=proc.data_dir)
    assert refused.returncode == 65 and "Traceback" not in refused.stderr, refused.stderr
    assert imapd("user", "list", data_dir=proc.data_dir).stdout.split() == ["carol"]
