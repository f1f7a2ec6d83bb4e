"""LIST pattern matching (imapd/commands/listmatch.py) against a reference: a regex, run
only on inputs small enough for its backtracking to stay cheap."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.commands.listmatch import Matcher, fold_wildcards, matches


def reference(pattern: str, name: str) -> bool:
    """RFC 3501 §6.3.8 as the server did it before (issue 14): a regex."""
    rx = "".join(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, name, re.DOTALL) is not None


# Few distinct characters, so that near-misses (the expensive case) are frequent.
names = st.text(alphabet="ab/.Z", max_size=12)
patterns = st.text(alphabet="ab/*%Z", max_size=10)


@settings(max_examples=1000, deadline=None)
@given(patterns, names)
def test_matcher_agrees_with_the_regex(pattern: str, name: str) -> None:
    assert Matcher(pattern)(name) == reference(pattern, name)


@settings(max_examples=200, deadline=None)
@given(patterns, names)
def test_folding_wildcards_keeps_the_meaning(pattern: str, name: str) -> None:
    assert reference(fold_wildcards(pattern), name) == reference(pattern, name)


def reference_matches(pattern: str, name: str) -> bool:
    """The server's old `matches`: INBOX case-insensitive as the pattern's first level."""
    if reference(pattern, name):
        return True
    if name == "INBOX" or name.startswith("INBOX/"):
        head, sep, rest = pattern.partition("/")
        if head.upper() == "INBOX":
            return reference("INBOX" + sep + rest, name)
    return False


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="inboxINBOX/*%a", max_size=9),
    st.sampled_from(
        ["INBOX", "INBOX/a", "INBOX/b/a", "inbox", "Inbox/a", "a/INBOX", "INBOXa", "a"]
    ),
)
def test_inbox_rule_agrees_with_the_old_one(pattern: str, name: str) -> None:
    assert matches(pattern, name) == reference_matches(pattern, name)


def test_examples() -> None:
    assert matches("*", "a/b/c")
    assert matches("%", "a") and not matches("%", "a/b")
    assert matches("a/%", "a/b") and not matches("a/%", "a/b/c")
    assert matches("a/*", "a/b/c") and not matches("a/*", "a")
    assert matches("a*", "a") and matches("a%", "ab") and not matches("a%", "a/b")
    assert matches("%/%", "x/y") and not matches("%/%", "x")
    assert matches("inbox", "INBOX") and matches("Inbox/%", "INBOX/Sent")
    assert not matches("inbox/%", "Inbox/Sent")  # only the name INBOX is case-insensitive
    assert not matches("INBOX*", "inboxes")


def test_the_issue_14_pattern_is_cheap() -> None:
    """`re.fullmatch` took hours here (exponential backtracking); the automaton does 20
    steps. Many repetitions would take minutes each with the old code."""
    pattern = "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z"
    for n in range(1, 200):
        assert not matches(pattern, "a" * n)
        assert matches(pattern, "a" * n + "Z")
    # Long patterns and long names: bounded by len(name) steps on a few big integers.
    assert not Matcher("%a" * 2000 + "Z")("a" * 5000)
