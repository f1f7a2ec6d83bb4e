"""The data of SORT, THREAD and ESORT responses (RFC 5256 §4, RFC 5267 §3.2), rendered as
one pre-serialized value each: thousands of numbers, written without a value per number.

Must not import asyncio, socket, ssl, store or notify: a thread tree comes in as any nodes
with ``uid`` (None for a dummy, a parent not among the results) and ``children``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol


class ThreadNode(Protocol):
    @property
    def uid(self) -> int | None: ...

    @property
    def children(self) -> Iterable[ThreadNode]: ...


def thread_data(roots: Sequence[ThreadNode], number: Callable[[int], int]) -> bytes:
    """thread-data's lists: ``1*thread-list`` (RFC 5256 §5), ``number`` mapping a UID to
    the number sent."""
    return "".join(thread_lists(roots, number)).encode("ascii")


def thread_lists(
    roots: Sequence[ThreadNode],
    number: Callable[[int], int],
    known: Mapping[ThreadNode, str] | None = None,
) -> list[str]:
    """Each root's thread-list (RFC 5256 §5), ``number`` mapping a UID to the number sent;
    a root found in ``known`` (the same node rendered with the same numbers) is taken from
    there. A chain of only children is one list of members, "(3 6 ...)", a split nests one
    list per sibling, and a dummy is a list of its children's lists, "((3)(5))".
    Iterative: a thread can be as deep as the mailbox is large."""
    lists: list[str] = []
    for root in roots:
        if known is not None and (text := known.get(root)) is not None:
            lists.append(text)
            continue
        out: list[str] = []
        stack: list[ThreadNode | str] = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
                continue
            out.append("(")
            node = item
            if node.uid is None:
                stack.append(")")
                stack.extend(reversed(list(node.children)))
                continue
            out.append(str(number(node.uid)))
            kids = list(node.children)
            while len(kids) == 1 and (uid := kids[0].uid) is not None:
                out.append(f" {number(uid)}")
                kids = list(kids[0].children)
            stack.append(")")
            if kids:
                out.append(" ")
                stack.extend(reversed(kids))
        lists.append("".join(out))
    return lists


def ordered_set(numbers: Sequence[int]) -> str:
    """``numbers`` in their order as a sequence-set, runs of consecutive ascending numbers
    as ranges and nothing else (RFC 5267 §3.2: ranges go up, "10:12", never "12:10")."""
    parts: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)
