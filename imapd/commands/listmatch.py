"""LIST/LSUB pattern matching (RFC 3501 §6.3.8, RFC 5258 §3) in bounded time.

``*`` matches any run of characters, the hierarchy delimiter included; ``%`` any run
without it. A backtracking regex takes exponential time on near-misses such as
``*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z`` against ``aaaaaaaaaaaaaaaaaaaa`` (issue 14: one LIST froze
the server for hours), so matching here never backtracks: like Dovecot's imap-match it first
folds runs of wildcards (``**``, ``*%``, ``%*`` are ``*``; ``%%`` is ``%``), then simulates
the pattern as a nondeterministic automaton with one bit per pattern position (the
"shift-and" technique), one step per character of the name. Cost: O(len(name) *
len(pattern) / machine word), whatever the pattern; no recursion, no exponential case.
Patterns that are a literal, or a literal then one trailing wildcard (the common ``Foo/*``,
``Foo/%``, ``*``) take a shortcut.

Pure (no I/O); INBOX case-insensitivity is `matches`' business, on top of `Matcher`.
"""

from __future__ import annotations

from functools import lru_cache

from store.api import DELIMITER


def fold_wildcards(pattern: str) -> str:
    """Runs of wildcards as one: a run holding a ``*`` is ``*``, else ``%``."""
    out: list[str] = []
    for ch in pattern:
        if ch in "*%" and out and out[-1] in "*%":
            if ch == "*":
                out[-1] = "*"
            continue
        out.append(ch)
    return "".join(out)


class Matcher:
    """One compiled pattern; `__call__` tells whether a whole name matches it."""

    __slots__ = ("_accept", "_any", "_literal", "_prefix", "_sep", "_star", "_tail")

    def __init__(self, pattern: str, sep: str = DELIMITER) -> None:
        pattern = fold_wildcards(pattern)
        self._sep = sep
        first = min((i for i in (pattern.find("*"), pattern.find("%")) if i >= 0), default=-1)
        # Shortcut: no wildcard, or only one, at the very end.
        self._prefix: str | None = None
        self._tail = ""
        if first < 0 or first == len(pattern) - 1:
            self._prefix = pattern if first < 0 else pattern[:-1]
            self._tail = "" if first < 0 else pattern[-1]
        # The automaton: bit i set means "pattern[:i] matched the name so far".
        self._literal: dict[str, int] = {}
        star = pct = 0
        for i, ch in enumerate(pattern):
            if ch == "*":
                star |= 1 << i
            elif ch == "%":
                pct |= 1 << i
            else:
                self._literal[ch] = self._literal.get(ch, 0) | (1 << i)
        self._star = star
        self._any = star | pct
        self._accept = 1 << len(pattern)

    def __call__(self, name: str) -> bool:
        if self._prefix is not None:
            if not name.startswith(self._prefix):
                return False
            rest_len = len(name) - len(self._prefix)
            if self._tail == "":
                return rest_len == 0
            if self._tail == "*":
                return True
            return self._sep not in name[len(self._prefix) :]
        wild, star, literal = self._any, self._star, self._literal
        state = 1 | ((1 & wild) << 1)  # the start, and past a leading wildcard (empty)
        for ch in name:
            stay = state & (star if ch == self._sep else wild)
            state = ((state & literal.get(ch, 0)) << 1) | stay
            if not state:
                return False
            # Wildcards match the empty string; folding left no two in a row.
            state |= (state & wild) << 1
        return bool(state & self._accept)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Matcher:
    return Matcher(pattern)


def matches(pattern: str, name: str) -> bool:
    """RFC 3501 §6.3.8 with INBOX case-insensitive, also as the first level of a pattern
    (RFC 3501 §5.1): ``inbox/%`` matches ``INBOX/Sent``."""
    if compile_pattern(pattern)(name):
        return True
    if name == "INBOX" or name.startswith("INBOX" + DELIMITER):
        head, sep, rest = pattern.partition(DELIMITER)
        if head.upper() == "INBOX" and head != "INBOX":
            return compile_pattern("INBOX" + sep + rest)(name)
    return False
