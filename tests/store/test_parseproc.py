"""A big spooled message parsed in a separate process (store/parseproc.py) gives what the
in-thread parse gives (store/newmessage.py `parse` and the SQLite search texts), byte for
byte, over ordinary, hostile and big shapes; through the pool too (what crosses the
process boundary survives pickling); and the SQLite store keeps the same rows either way."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import sqlite3
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from store import newmessage, parseproc
from store.api import NewMessage
from store.changes import Origin
from store.mime import BodyPart
from store.sqlite import search
from store.sqlite.store import SqliteStore
from tests.store.test_mime import MSG3, MSG42, RFC_EXAMPLE

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def attachment(size: int) -> bytes:
    data = base64.encodebytes(random.Random(7).randbytes(size)).replace(b"\n", b"\r\n")
    return (
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nTo: b@example.org\r\n"
        b"Subject: attachment\r\nMIME-Version: 1.0\r\nMessage-ID: <att@x>\r\n"
        b"Content-Type: multipart/mixed; boundary=XYZ\r\n\r\n--XYZ\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee the file, caf\xc3\xa9.\r\n--XYZ\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=a.bin\r\n\r\n" + data + b"--XYZ--\r\n"
    )


def many_parts(n: int) -> bytes:
    part = b"--p\r\nContent-Type: text/plain\r\n\r\npart\r\n"
    return b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + part * n + b"--p--\r\n"


SHAPES = {
    "rfc3501 example": RFC_EXAMPLE,
    "nested": MSG3,
    "alternative": MSG42,
    "empty": b"",
    "no header": b"no header at all, no colon",
    "bare lf": (
        b"Subject: lf\nContent-Type: multipart/alternative; boundary=b\n\n"
        b"--b\none\n--b\n\ntwo\n--b--\n"
    ),
    "no close delimiter": (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nx\r\n--b\r\ny  "
    ),
    "same boundary nested": (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nin\r\n--b--\r\n--b--\r\n"
    ),
    "8-bit headers": b"Subject: \xe9t\xe9 \xff\xfe\r\nFrom: \xc3\xa9@\xff\r\n\r\nbody",
    "broken addresses": b'From: <<<@@@>>>,,,;;;:::"\\\r\nTo: (((\r\nCc: "unterminated\r\n\r\n',
    "nul octets": b"\x00\x01\x02: \x03\r\n \r\n\t\r\n\r\n\x00body",
    "rfc2231": b"Content-Type: text/plain; charset*0*=x''%; charset*=y; charset*99999999=z\r\n\r\n",
    "20,000 addresses": b"To: "
    + b", ".join(b"u%d@example.org" % i for i in range(20_000))
    + b"\r\nSubject: many\r\n\r\nbody\r\n",
    "3,000 parts": many_parts(3000),
    "deep nesting": b"".join(
        b"Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n" % (i, i) for i in range(200)
    )
    + b"leaf\r\n",
    "message/rfc822": b"Content-Type: message/rfc822\r\n\r\n" + RFC_EXAMPLE,
    "2 MiB attachment": attachment(1_500_000),
    "2 MiB plain": b"Subject: plain\r\n\r\n" + b"The quick brown fox.\r\n" * 100_000,
}


def thread_path(path: Path) -> tuple[object, ...]:
    """What `SqliteAppend._prepare` keeps, by the in-thread parse (today's path)."""
    p = newmessage.parse(NewMessage(content=path, flags=(), internaldate=NOW), lambda: NOW)
    texts = search.search_texts(p.data, p.parsed)
    return (p.size, p.header_len, p.structure, p.message_id, p.preview, texts, p.parsed)


def process_path(f: parseproc.SpooledFacts[tuple[str, ...]]) -> tuple[object, ...]:
    return (
        f.size,
        f.parsed.body_start,
        f.structure,
        f.message_id,
        f.preview,
        f.extra,
        f.parsed,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_facts_equal_the_in_thread_parse(shape: str, tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(SHAPES[shape])
    assert process_path(parseproc.facts(str(path), search.search_texts)) == thread_path(path)


async def test_through_the_pool_equal_the_in_thread_parse(tmp_path: Path) -> None:
    try:
        for shape in ("rfc3501 example", "3,000 parts", "8-bit headers", "2 MiB attachment"):
            path = tmp_path / "m"
            path.write_bytes(SHAPES[shape])
            got = await parseproc.parse_spooled(path, search.search_texts)
            assert isinstance(got.parsed, BodyPart)
            assert process_path(got) == thread_path(path), shape
    finally:
        parseproc.shutdown()


def die(data: bytes, parsed: BodyPart) -> tuple[str, ...]:
    """An ``extra`` that ends its parse process, as the kernel's OOM killer would."""
    os._exit(1)


async def test_a_pool_whose_process_died_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(RFC_EXAMPLE)
    try:
        with pytest.raises(BrokenProcessPool):
            await parseproc.parse_spooled(path, die)
        got = await parseproc.parse_spooled(path, search.search_texts)
        assert process_path(got) == thread_path(path)
    finally:
        parseproc.shutdown()


def stored_rows(db: Path) -> list[tuple[object, ...]]:
    """Every column APPEND fills from the parse, per message, in UID order."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT m.uid, m.size, c.header_len, c.message_id, c.structure, c.raw, w.wire,"
            " s.from_text, s.to_text, s.cc_text, s.bcc_text, s.subject_text, p.preview,"
            " h.header FROM messages AS m JOIN contents AS c ON c.id = m.content_id"
            " LEFT JOIN content_wire AS w ON w.id = c.id"
            " LEFT JOIN content_search AS s ON s.id = c.id"
            " LEFT JOIN content_preview AS p ON p.id = c.id"
            " LEFT JOIN content_header AS h ON h.id = c.id ORDER BY m.uid"
        ).fetchall()


async def append_all(
    tmp_path: Path,
    name: str,
    messages: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    threshold: int,
) -> Path:
    from imapd.fetch import prerender  # FETCH's pre-rendered answers, as the server stores them

    db = tmp_path / f"{name}.db"
    store = await SqliteStore.open(
        db, lambda changes: None, scrypt_n=16, prerender=prerender, clock=lambda: NOW
    )
    monkeypatch.setattr(parseproc, "IN_PROCESS", threshold)
    try:
        user = await store.create_user("u", "pw")
        for i, raw in enumerate(messages):
            path = tmp_path / f"{name}-{i}.eml"
            path.write_bytes(raw)
            message = NewMessage(content=path, flags=("\\Seen",), internaldate=NOW)
            await store.append(user.id, "INBOX", [message], Origin(None, "test"))
    finally:
        await store.close()
    return db


async def test_sqlite_rows_are_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [SHAPES[s] for s in ("rfc3501 example", "20,000 addresses", "2 MiB attachment")]
    in_thread = await append_all(tmp_path, "thread", messages, monkeypatch, threshold=1 << 40)
    in_process = await append_all(tmp_path, "process", messages, monkeypatch, threshold=0)
    assert stored_rows(in_process) == stored_rows(in_thread)
    assert [r[5] for r in stored_rows(in_process)] == messages
