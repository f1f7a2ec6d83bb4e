"""RFC 5267 contexts evaluate a changed message from its change's facts when the program
tests only flags, keywords, MODSEQ, size and UIDs (imapd/rfc5267.py `match_facts`): that
must give exactly what the store's SEARCH gives for the same message. Random messages,
random flag changes, random programs over those keys; the facts are the published Changes'."""

from __future__ import annotations

import random

from imapd.rfc5267 import Facts, match_facts
from store.api import Criterion
from store.changes import FlagsChanged, MessagesAdded
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, new

BOTH_BACKENDS = True

C = Criterion
FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Work", "Todo", "$junk"]
SIMPLE = ["SEEN", "ANSWERED", "FLAGGED", "DELETED", "DRAFT"]


def _program(rng: random.Random, depth: int = 0) -> Criterion:
    pick = rng.random()
    if depth < 3 and pick < 0.25:
        kids = tuple(_program(rng, depth + 1) for _ in range(rng.randint(1, 3)))
        return C(rng.choice(["AND", "OR"]), children=kids)
    if depth < 3 and pick < 0.35:
        return C("NOT", children=(_program(rng, depth + 1),))
    kind = rng.randint(0, 6)
    if kind == 0:
        return C(rng.choice(SIMPLE))
    if kind == 1:
        return C("UN" + rng.choice(SIMPLE))
    if kind == 2:  # keywords compare case-insensitively
        word = rng.choice(["$work", "$WORK", "todo", "TODO", "$Junk", "absent"])
        return C(rng.choice(["KEYWORD", "UNKEYWORD"]), word)
    if kind == 3:
        return C(rng.choice(["LARGER", "SMALLER"]), rng.randint(50, 400))
    if kind == 4:
        return C("MODSEQ", rng.randint(1, 40))
    if kind == 5:
        lo = rng.randint(1, 20)
        return C("UIDS", ((lo, lo + rng.randint(0, 5)), (lo + 8, lo + 9)))
    return C("ALL")


async def test_facts_agree_with_the_store(store: SqliteStore, env: Env) -> None:
    rng = random.Random(5267)
    user = await store.create_user("bob", "pw")
    await store.append(
        user.id,
        "INBOX",
        [
            new(
                f"m{n}",
                tuple(f for f in FLAGS if rng.random() < 0.3),
                body="x" * rng.randint(0, 400),
            )
            for n in range(20)
        ],
        ORIGIN,
    )
    box = await store.get_mailbox(user.id, "INBOX")
    for _ in range(15):
        uids = rng.sample(range(1, 21), rng.randint(1, 6))
        flags = [f for f in FLAGS if rng.random() < 0.3] or ["\\Seen"]
        await store.store_flags(box.id, sorted(uids), rng.choice("+-"), flags, ORIGIN)
    facts: dict[int, Facts] = {}
    for change in env.published:
        if isinstance(change, MessagesAdded):
            for m in change.messages:
                facts[m.uid] = Facts(m.flags, m.modseq, m.size)
        elif isinstance(change, FlagsChanged):
            for fc in change.changes:
                facts[fc.uid] = Facts(fc.flags, fc.modseq, facts[fc.uid].size)
    assert len(facts) == 20
    checked = 0
    for _ in range(300):
        program = _program(rng)
        found = set(await store.search(box.id, program))
        for uid, f in facts.items():
            verdict = match_facts(program, uid, f, frozenset())
            assert verdict is not None, program
            assert verdict == (uid in found), (program, uid, f)
            checked += 1
    assert checked == 6000


def test_other_keys_are_left_to_the_store() -> None:
    """Text, dates, and size when a flag change did not carry it: None (the store decides)."""
    f = Facts(("\\Seen",), 3, None)
    assert match_facts(C("SUBJECT", "x"), 1, f, frozenset()) is None
    assert match_facts(C("OR", children=(C("SEEN"), C("BODY", "x"))), 1, f, frozenset()) is None
    assert match_facts(C("LARGER", 10), 1, f, frozenset()) is None
    assert match_facts(C("NOT", children=(C("SEEN"),)), 1, f, frozenset()) is False
    assert match_facts(C("RECENT"), 1, f, frozenset({1})) is True
