"""Store.previews (RFC 8970) on both backends: stored at APPEND in the same transaction,
shared by COPY, computed and saved for contents stored without one, gone with the contents."""

from __future__ import annotations

from typing import Any

from store.api import NewMessage
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True

HTML = (
    b"Subject: html\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>b{}</style></head><body><p>Hallo&nbsp;<b>Welt</b></p></body></html>"
)
PLAIN = "Subject: plain\r\n\r\n  Grüße,\r\n  Köln \r\n".encode()
IMAGE = (
    b"Subject: img\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lG\r\n"
)


async def _setup(env: Env) -> tuple[Any, int, int, list[int]]:
    """A store, alice's id, INBOX's id and the content ids of HTML, PLAIN, IMAGE there."""
    store = await env.open()
    user = await store.create_user("alice", "pw")
    await store.append(user.id, "INBOX", [NewMessage(m) for m in (HTML, PLAIN, IMAGE)], ORIGIN)
    inbox = await store.get_mailbox(user.id, "INBOX")
    records = await store.fetch(inbox.id, [1, 2, 3])
    return store, user.id, inbox.id, [r.content_id for r in records]


async def test_stored_at_append(env: Env) -> None:
    store, _, _, ids = await _setup(env)
    expected = {ids[0]: "Hallo Welt", ids[1]: "Grüße, Köln", ids[2]: ""}
    assert await store.previews(ids, compute=False) == expected
    rows = env.rows("SELECT id, preview FROM content_preview ORDER BY id")
    assert dict(rows) == expected  # type: ignore[arg-type]
    assert await store.previews([]) == {}
    assert await store.previews([999_999]) == {}  # no such contents: missing, not an error


async def test_copy_shares_and_expunge_of_the_last_copy_removes(env: Env) -> None:
    store, user_id, inbox_id, ids = await _setup(env)
    await store.create_mailbox(user_id, "Other", ORIGIN)
    other = await store.get_mailbox(user_id, "Other")
    await store.copy_messages(inbox_id, [2], user_id, other.id, ORIGIN)
    copied = await store.fetch(other.id, [1])
    assert copied[0].content_id == ids[1]
    assert env.rows("SELECT count(*) FROM content_preview") == [(3,)]
    await store.store_flags(inbox_id, [1, 2], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(inbox_id, ORIGIN)
    # HTML's contents went with its last message, PLAIN's stay with the copy.
    assert sorted(r[0] for r in env.rows("SELECT id FROM content_preview")) == [ids[1], ids[2]]  # type: ignore[type-var]
    assert await store.previews(ids) == {ids[1]: "Grüße, Köln", ids[2]: ""}


async def test_contents_from_before_previews_computed_once_then_saved(env: Env) -> None:
    """A contents row without a preview (stored before the migration): missing without
    ``compute`` (FETCH PREVIEW (LAZY): NIL), made and saved with it."""
    store, _, _, ids = await _setup(env)
    env.rows("DELETE FROM content_preview WHERE id <> ?", ids[2])
    assert await store.previews(ids, compute=False) == {ids[2]: ""}
    expected = {ids[0]: "Hallo Welt", ids[1]: "Grüße, Köln", ids[2]: ""}
    assert await store.previews(ids) == expected
    assert dict(env.rows("SELECT id, preview FROM content_preview")) == expected  # type: ignore[arg-type]
    again = await env.open()  # another handle (another process) reads what was saved
    assert await again.previews(ids, compute=False) == expected
