"""``imapd fsck``: SQLite's own integrity check plus the store's invariants, and the repair
of what can be recomputed from the rows.

Owns the list of invariants (see the store's implementation notes, store/sqlite/store.py, and the
schema, store/sqlite/migrations/):

- ``integrity``: ``PRAGMA integrity_check`` (every page, index and constraint) and
  ``PRAGMA foreign_key_check``. Not repairable here: restore a backup.
- ``counters``: each mailbox's messages, unseen, size and deleted equal its rows. Quota
  usage is not stored (store/quota.py sums these counters), so this covers it too.
- ``uidnext``: above every UID the mailbox ever used: its messages and its expunged rows
  (``recent_uid`` never above ``uidnext``), and at least the UIDNEXT any change_log row of
  the mailbox (same id and UIDVALIDITY) recorded in its counts.
- ``modseq``: ``highestmodseq`` at least every message's and expunged row's modseq, and at
  least any HIGHESTMODSEQ the change_log recorded for it (it never goes backwards).
- ``uidvalidity``: ``meta.uidvalidity`` (the last one handed out) at least every mailbox's.
- ``refs``: ``contents.refs`` equals the messages using the row; a row no message uses is an
  orphan; a message whose content row is missing has lost its body (not repairable).
- ``search``: ``content_search`` rows belong to a contents row.
- ``sequence``: ``sqlite_sequence`` (AUTOINCREMENT) at least each table's largest id, so ids
  and change_log seqs are never reused; no durable consumer's cursor (``event_cursors``)
  ahead of the change_log sequence; change_log seqs contiguous except the gaps a restore
  recorded in ``meta.change_log_gaps`` (store/sqlite/backup.py).

`check` only reads (safe while the server runs); `repair` recomputes counters, refcounts
and orphans, raises UIDNEXT, HIGHESTMODSEQ, UIDVALIDITY and sequences, all in one
transaction, and returns what it changed. It never deletes a message and never lowers a
value clients may have seen. Plain sqlite3, synchronous: a command-line tool's work.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

Fix = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # one of the names in the module docstring
    text: str
    fix: Fix | None = None  # None: not repairable by fsck

    @property
    def repairable(self) -> bool:
        return self.fix is not None


def _run(sql: str, params: tuple[object, ...] = ()) -> Fix:
    def fix(db: sqlite3.Connection) -> None:
        db.execute(sql, params)

    return fix


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def check(db: sqlite3.Connection, *, full: bool = True) -> list[Finding]:
    """Every invariant on ``db``. ``full``: SQLite's integrity_check (reads every page) rather
    than quick_check. The invariants are still checked after integrity problems (each in its
    own query: a damaged table fails only its own checks, reported as such)."""
    findings: list[Finding] = []
    pragma = "integrity_check" if full else "quick_check"
    rows = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}")]
    if rows != ["ok"]:
        findings += [Finding("integrity", f"{pragma}: {r}") for r in rows]
    for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check"):
        findings.append(Finding("integrity", f"{table} row {rowid}: no {parent} row it refers to"))
    for name, step in (
        ("counters", _counters),
        ("uidnext", _uidnext),
        ("modseq", _modseq),
        ("change_log", _logged),
        ("uidvalidity", _uidvalidity),
        ("refs", _refs),
        ("search", _search),
        ("sequence", _sequences),
    ):
        try:
            findings += step(db)
        except sqlite3.DatabaseError as exc:
            findings.append(Finding(name, f"cannot be checked: {exc}"))
    return findings


def repair(db: sqlite3.Connection, findings: list[Finding]) -> list[Finding]:
    """Apply the fixes of ``findings`` in one transaction (``db`` in autocommit mode);
    return those applied. Any error rolls everything back."""
    fixes = [f for f in findings if f.fix is not None]
    if not fixes:
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        for finding in fixes:
            assert finding.fix is not None
            finding.fix(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return fixes


# --- the invariants ------------------------------------------------------------------------
_MAILBOX = (
    "(SELECT u.name || '/' || m.name FROM mailboxes m JOIN users u ON u.id = m.owner_id"
    " WHERE m.id = {})"
)


def _counters(db: sqlite3.Connection) -> list[Finding]:
    out = []
    for row in db.execute(
        "SELECT m.id, u.name, m.name, m.messages, m.unseen, m.size, m.deleted,"
        " coalesce(r.n, 0), coalesce(r.unseen, 0), coalesce(r.size, 0), coalesce(r.deleted, 0)"
        " FROM mailboxes m JOIN users u ON u.id = m.owner_id LEFT JOIN ("
        "  SELECT mailbox_id, count(*) AS n, sum(seen = 0) AS unseen, sum(size) AS size,"
        "  sum(deleted != 0) AS deleted FROM messages GROUP BY mailbox_id"
        " ) r ON r.mailbox_id = m.id"
        " WHERE m.messages != coalesce(r.n, 0) OR m.unseen != coalesce(r.unseen, 0)"
        " OR m.size != coalesce(r.size, 0) OR m.deleted != coalesce(r.deleted, 0)"
        " ORDER BY m.id"
    ):
        mid, owner, name = row[0], row[1], row[2]
        have, want = row[3:7], row[7:11]
        diff = ", ".join(
            f"{col} {h} (rows: {w})"
            for col, h, w in zip(("messages", "unseen", "size", "deleted"), have, want, strict=True)
            if h != w
        )
        out.append(
            Finding(
                "counters",
                f"mailbox {owner}/{name}: {diff}",
                _run(
                    "UPDATE mailboxes SET messages = ?, unseen = ?, size = ?, deleted = ?"
                    " WHERE id = ?",
                    (*want, mid),
                ),
            )
        )
    return out


def _uidnext(db: sqlite3.Connection) -> list[Finding]:
    out = []
    for mid, owner, name, uidnext, top, recent in db.execute(
        "SELECT m.id, u.name, m.name, m.uidnext, max(coalesce(a.top, 0), coalesce(e.top, 0)),"
        " m.recent_uid FROM mailboxes m JOIN users u ON u.id = m.owner_id"
        " LEFT JOIN (SELECT mailbox_id, max(uid) AS top FROM messages GROUP BY mailbox_id) a"
        "  ON a.mailbox_id = m.id"
        " LEFT JOIN (SELECT mailbox_id, max(uid) AS top FROM expunged GROUP BY mailbox_id) e"
        "  ON e.mailbox_id = m.id"
        " ORDER BY m.id"
    ):
        if uidnext <= top or uidnext < 1:
            why = f"but UID {top} was used" if top else "below 1"
            out.append(
                Finding(
                    "uidnext",
                    f"mailbox {owner}/{name}: UIDNEXT {uidnext} {why}",
                    _run(
                        "UPDATE mailboxes SET uidnext = ? WHERE id = ? AND uidnext <= ?",
                        (top + 1, mid, top),
                    ),
                )
            )
        if recent > max(uidnext, top + 1):
            out.append(
                Finding(
                    "uidnext",
                    f"mailbox {owner}/{name}: recent_uid {recent} above UIDNEXT",
                    _run("UPDATE mailboxes SET recent_uid = uidnext WHERE id = ?", (mid,)),
                )
            )
    return out


def _modseq(db: sqlite3.Connection) -> list[Finding]:
    out = []
    for mid, owner, name, highest, top in db.execute(
        "SELECT m.id, u.name, m.name, m.highestmodseq,"
        " max(coalesce(a.top, 0), coalesce(e.top, 0))"
        " FROM mailboxes m JOIN users u ON u.id = m.owner_id"
        " LEFT JOIN (SELECT mailbox_id, max(modseq) AS top FROM messages GROUP BY mailbox_id) a"
        "  ON a.mailbox_id = m.id"
        " LEFT JOIN (SELECT mailbox_id, max(modseq) AS top FROM expunged GROUP BY mailbox_id) e"
        "  ON e.mailbox_id = m.id"
        " WHERE m.highestmodseq < max(coalesce(a.top, 0), coalesce(e.top, 0), 1)"
        " ORDER BY m.id"
    ):
        top = max(top, 1)  # it starts at 1 (store/sqlite/store.py)
        out.append(
            Finding(
                "modseq",
                f"mailbox {owner}/{name}: HIGHESTMODSEQ {highest} below {top}",
                _run(
                    "UPDATE mailboxes SET highestmodseq = ? WHERE id = ? AND highestmodseq < ?",
                    (top, mid, top),
                ),
            )
        )
    return out


def _logged(db: sqlite3.Connection) -> list[Finding]:
    """UIDNEXT and HIGHESTMODSEQ at least what change_log rows of the same mailbox and
    UIDVALIDITY recorded (their ``counts``): UIDs whose messages and expunged rows are both
    gone, and HIGHESTMODSEQ gone backwards."""
    out = []
    for mid, owner, name, uidnext, highest, logged_next, logged_hms in db.execute(
        "SELECT m.id, u.name, m.name, m.uidnext, m.highestmodseq, l.nxt, l.hms"
        " FROM mailboxes m JOIN users u ON u.id = m.owner_id JOIN ("
        "  SELECT json_extract(payload, '$.mailbox.id') AS mid,"
        "  json_extract(payload, '$.mailbox.uidvalidity') AS uv,"
        "  max(json_extract(payload, '$.counts.uidnext')) AS nxt,"
        "  max(json_extract(payload, '$.counts.highestmodseq')) AS hms"
        "  FROM change_log WHERE json_valid(payload)"
        "  AND json_type(payload, '$.counts.uidnext') = 'integer' GROUP BY 1, 2"
        " ) l ON l.mid = m.id AND l.uv = m.uidvalidity"
        " WHERE m.uidnext < l.nxt OR m.highestmodseq < l.hms ORDER BY m.id"
    ):
        if uidnext < logged_next:
            out.append(
                Finding(
                    "uidnext",
                    f"mailbox {owner}/{name}: UIDNEXT {uidnext} below {logged_next}"
                    " recorded in the change_log (UIDs clients may hold)",
                    _run(
                        "UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?",
                        (logged_next, mid),
                    ),
                )
            )
        if highest < logged_hms:
            out.append(
                Finding(
                    "modseq",
                    f"mailbox {owner}/{name}: HIGHESTMODSEQ {highest} below"
                    f" {logged_hms} recorded in the change_log (it went backwards)",
                    _run(
                        "UPDATE mailboxes SET highestmodseq = max(highestmodseq, ?) WHERE id = ?",
                        (logged_hms, mid),
                    ),
                )
            )
    return out


def _uidvalidity(db: sqlite3.Connection) -> list[Finding]:
    row = db.execute(
        "SELECT (SELECT value FROM meta WHERE key = 'uidvalidity'),"
        " (SELECT max(uidvalidity) FROM mailboxes)"
    ).fetchone()
    last, top = row
    if top is not None and (last is None or int(last) < top):
        return [
            Finding(
                "uidvalidity",
                f"meta.uidvalidity {last} below a mailbox's UIDVALIDITY {top}",
                _run(
                    "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?) ON CONFLICT (key)"
                    " DO UPDATE SET value = max(value, excluded.value)",
                    (top,),
                ),
            )
        ]
    return []


def _refs(db: sqlite3.Connection) -> list[Finding]:
    out = []
    for cid, refs, used in db.execute(
        "SELECT c.id, c.refs, coalesce(r.n, 0) FROM contents c LEFT JOIN"
        " (SELECT content_id, count(*) AS n FROM messages GROUP BY content_id) r"
        " ON r.content_id = c.id WHERE c.refs != coalesce(r.n, 0) ORDER BY c.id"
    ):
        if used:
            out.append(
                Finding(
                    "refs",
                    f"contents {cid}: refs {refs}, used by {used} messages",
                    _run("UPDATE contents SET refs = ? WHERE id = ?", (used, cid)),
                )
            )
        else:
            out.append(
                Finding(
                    "refs",
                    f"contents {cid}: refs {refs}, used by no message"
                    " (an orphan, deleted by --repair)",
                    _run("DELETE FROM contents WHERE id = ?", (cid,)),
                )
            )
    for mid, uid, cid in db.execute(
        "SELECT mailbox_id, uid, content_id FROM messages WHERE content_id NOT IN"
        " (SELECT id FROM contents) ORDER BY mailbox_id, uid"
    ):
        where = db.execute("SELECT " + _MAILBOX.format("?"), (mid,)).fetchone()[0]
        out.append(
            Finding(
                "refs",
                f"mailbox {where} UID {uid}: its content row {cid} is"
                " missing (the message's body is lost; restore a backup)",
            )
        )
    return out


def _search(db: sqlite3.Connection) -> list[Finding]:
    if not _has_table(db, "content_search"):
        return []
    (orphans,) = db.execute(
        "SELECT count(*) FROM content_search WHERE id NOT IN (SELECT id FROM contents)"
    ).fetchone()
    if not orphans:
        return []
    return [
        Finding(
            "search",
            f"{orphans} content_search rows without a contents row",
            _run("DELETE FROM content_search WHERE id NOT IN (SELECT id FROM contents)"),
        )
    ]


def _sequences(db: sqlite3.Connection) -> list[Finding]:
    out = []
    seqs = dict(db.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    for table, key in (
        ("users", "id"),
        ("mailboxes", "id"),
        ("contents", "id"),
        ("change_log", "seq"),
    ):
        (top,) = db.execute(f"SELECT coalesce(max({key}), 0) FROM {table}").fetchone()
        if top > int(seqs.get(table, 0)):
            out.append(
                Finding(
                    "sequence",
                    f"sqlite_sequence of {table} {seqs.get(table, 0)}"
                    f" below its largest {key} {top}",
                    _raise_sequence(table, top),
                )
            )
    head = max(
        int(seqs.get("change_log", 0)),
        db.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0],
    )
    if _has_table(db, "event_cursors"):
        for name, seq in db.execute("SELECT name, seq FROM event_cursors WHERE seq > ?", (head,)):
            out.append(
                Finding(
                    "sequence",
                    f"event cursor {name!r} at seq {seq}, ahead of the change_log's"
                    f" {head}: new events would reuse seqs it has seen (raised above it)",
                    _raise_sequence("change_log", seq),
                )
            )
    out += _gaps(db)
    return out


def _raise_sequence(table: str, value: int) -> Fix:
    def fix(db: sqlite3.Connection) -> None:
        db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (value, table))
        db.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
            (table, value, table),
        )

    return fix


def known_gaps(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """The change_log gaps restores made on purpose: (last seq before, first seq after)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'change_log_gaps'").fetchone()
    return [(int(a), int(b)) for a, b in json.loads(row[0])] if row else []


def _gaps(db: sqlite3.Connection) -> list[Finding]:
    known = set(known_gaps(db))
    out = []
    for before, after in db.execute(
        "SELECT seq, next FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS next"
        " FROM change_log) WHERE next IS NOT NULL AND next != seq + 1 LIMIT 101"
    ):
        if any(a <= before and after <= b for a, b in known):
            continue
        out.append(
            Finding(
                "sequence",
                f"change_log seqs {before + 1}..{after - 1} missing (rows deleted by hand?)",
            )
        )
    return out[:100]
