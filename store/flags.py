"""Flag rules shared by the store: canonical spelling, storage form, set arithmetic.

Owns: how flags are spelled and compared. System flags (RFC 3501 §2.3.2) are matched
case-insensitively and stored in their canonical spelling; ``\\Recent`` is session state and
is never stored. Keywords are compared case-insensitively (as mox and Cyrus do); the spelling
first stored for a message wins. Imports nothing of imapd or notify.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SYSTEM_FLAGS: dict[str, str] = {
    "\\answered": "\\Answered",
    "\\flagged": "\\Flagged",
    "\\deleted": "\\Deleted",
    "\\seen": "\\Seen",
    "\\draft": "\\Draft",
}
_ORDER = {flag: i for i, flag in enumerate(SYSTEM_FLAGS.values())}


def canonical_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """System flags first in a fixed order, then keywords in the order given; duplicates
    (case-insensitive), ``\\Recent``, unknown ``\\`` flags and empty strings dropped."""
    system: list[str] = []
    keywords: list[str] = []
    seen: set[str] = set()
    for flag in flags:
        low = flag.lower()
        if not flag or low in seen or any(c in flag for c in " \t\r\n"):
            continue
        if low.startswith("\\"):
            if low not in SYSTEM_FLAGS:
                continue  # \Recent, or a flag-extension this store cannot keep
            system.append(SYSTEM_FLAGS[low])
        else:
            keywords.append(flag)
        seen.add(low)
    system.sort(key=_ORDER.__getitem__)
    return (*system, *keywords)


def to_text(flags: Sequence[str]) -> str:
    """Storage form: space-separated (flags are atoms and contain no space)."""
    return " ".join(flags)


def from_text(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


def apply(
    mode: str, old: tuple[str, ...], given: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """STORE arithmetic: returns (new flags, really added, really removed). ``mode`` is "+",
    "-" or "" (replace); ``given`` must be canonical."""
    old_keys = {f.lower() for f in old}
    given_keys = {f.lower() for f in given}
    if mode == "+":
        added = tuple(f for f in given if f.lower() not in old_keys)
        removed: tuple[str, ...] = ()
    elif mode == "-":
        added = ()
        removed = tuple(f for f in old if f.lower() in given_keys)
    elif mode == "":
        added = tuple(f for f in given if f.lower() not in old_keys)
        removed = tuple(f for f in old if f.lower() not in given_keys)
    else:
        raise ValueError(f"bad STORE mode {mode!r}")
    if not added and not removed:
        return old, (), ()
    removed_keys = {f.lower() for f in removed}
    new = canonical_flags([*(f for f in old if f.lower() not in removed_keys), *added])
    return new, added, removed


def keywords(flags: Iterable[str]) -> list[str]:
    return [f for f in flags if not f.startswith("\\")]
