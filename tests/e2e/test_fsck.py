"""``imapd fsck [--repair]`` (issue 14 #7): a store damaged by direct SQL is reported, the
recomputable damage repaired in one go, and fsck is clean afterwards."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from imapd.cli.backup import EXIT_IN_USE
from tests.e2e.messages import numbered
from tests.e2e.process import Proc, imapd


def _populate(proc: Proc) -> None:
    proc.start()
    c = proc.client()
    for i in range(6):
        assert c.append("INBOX", "(\\Seen)" if i % 2 else None, None, numbered(i))[0] == "OK"
    c.create("Keep")
    c.select("INBOX")
    c.copy("1:3", "Keep")  # shared contents: refs 2
    c.store("2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()


def test_fsck_reports_repairs_and_is_clean_after(proc: Proc) -> None:
    data = proc.data_dir
    _populate(proc)
    clean = imapd("fsck", data_dir=data)  # read-only: fine while serving
    assert clean.returncode == 0 and "clean" in clean.stdout, clean.stdout + clean.stderr

    db = sqlite3.connect(data / "imapd.sqlite3", isolation_level=None)
    inbox = (
        "(SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.owner_id"
        " WHERE u.name = 'carol' AND m.name = 'INBOX')"
    )
    (head,) = db.execute("SELECT max(seq) FROM change_log").fetchone()
    damage = f"""
        UPDATE mailboxes SET messages = messages + 3, unseen = 0, size = 1, uidnext = 2,
               highestmodseq = 1 WHERE id = {inbox};
        UPDATE contents SET refs = 7 WHERE id = (SELECT min(id) FROM contents);
        INSERT INTO contents (refs, header_len, message_id, structure, raw)
            VALUES (1, 0, NULL, '{{}}', x'00');
        UPDATE meta SET value = 5 WHERE key = 'uidvalidity';
        UPDATE sqlite_sequence SET seq = 2 WHERE name = 'change_log';
        INSERT INTO event_cursors (name, seq) VALUES ('webhook', {head + 40});
        -- UID 3 of Keep gone with no trace but the change_log's counts: UIDNEXT back to 3.
        DELETE FROM messages WHERE uid = 3 AND mailbox_id = (SELECT id FROM mailboxes
            WHERE name = 'Keep');
        UPDATE mailboxes SET uidnext = 3 WHERE name = 'Keep';
    """  # noqa: S608 - the test's own damage, no outside input
    db.executescript(damage)
    db.close()

    # fsck --repair needs the store to itself: refused while the server runs.
    busy = imapd("fsck", "--repair", data_dir=data)
    assert busy.returncode == EXIT_IN_USE, busy.stdout + busy.stderr
    found = imapd("fsck", data_dir=data)
    assert found.returncode == 1, found.stdout + found.stderr
    checks = set(re.findall(r"^(\w+): ", found.stdout, re.M))
    assert checks == {"counters", "uidnext", "modseq", "refs", "uidvalidity", "sequence"}
    assert "carol/INBOX: messages" in found.stdout
    assert "UIDNEXT 2 but UID 6 was used" in found.stdout
    assert "event cursor 'webhook'" in found.stdout
    assert "carol/Keep: UIDNEXT 3 below 4 recorded in the change_log" in found.stdout

    proc.stop()
    repaired = imapd("fsck", "--repair", data_dir=data)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert repaired.stdout.count("repaired ") == found.stdout.count("\n") - 1
    again = imapd("fsck", data_dir=data)
    assert again.returncode == 0 and "clean" in again.stdout, again.stdout

    # The repaired store serves right: counts from the rows, new UIDs above the old.
    proc.start()
    c = proc.client()
    typ, data_ = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")
    assert data_[0].endswith(b"(MESSAGES 5 UNSEEN 3 UIDNEXT 7)"), data_
    typ, data_ = c.status("Keep", "(MESSAGES UIDNEXT)")
    assert data_[0].endswith(b"(MESSAGES 2 UIDNEXT 4)"), data_
    typ, answer = c.append("INBOX", None, None, numbered(9))
    assert typ == "OK" and b"APPENDUID" in answer[0] and answer[0].split()[2] == b"7]"
    c.logout()
    proc.stop()
    db = sqlite3.connect(data / "imapd.sqlite3")
    (seq,) = db.execute("SELECT max(seq) FROM change_log").fetchone()
    assert seq > head + 40  # new events never reuse a seq the webhook has seen
    db.close()


def test_what_cannot_be_recomputed_is_reported_not_repaired(proc: Proc) -> None:
    data: Path = proc.data_dir
    _populate(proc)
    proc.stop()
    db = sqlite3.connect(data / "imapd.sqlite3", isolation_level=None)
    db.execute("DELETE FROM change_log WHERE seq = (SELECT min(seq) + 2 FROM change_log)")
    db.execute("DELETE FROM contents WHERE id = (SELECT max(content_id) FROM messages)")
    db.close()
    repaired = imapd("fsck", "--repair", data_dir=data)
    assert repaired.returncode == 1, repaired.stdout + repaired.stderr
    assert re.search(
        r"sequence: change_log seqs \d+\.\.\d+ missing.*\[not repairable\]", repaired.stdout
    )
    assert re.search(
        r"refs: mailbox carol/\w+ UID \d+: its content row \d+ is missing", repaired.stdout
    )
    assert "problem(s) left" in repaired.stdout
