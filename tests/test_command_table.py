"""imapd/commands/__init__.py's HANDLERS table against the parser's Command union: every
command the parser can produce has a handler, and the table names nothing else."""

from __future__ import annotations

import inspect
import typing

from imapd.commands import HANDLERS
from imapd.protocol import commands as c


def command_types() -> set[type]:
    return set(typing.get_args(c.Command))


def test_the_command_union_is_not_empty() -> None:
    assert len(command_types()) > 20  # the check below would pass vacuously on an empty union


def test_every_command_type_has_a_handler() -> None:
    missing = command_types() - set(HANDLERS)
    assert not missing, sorted(t.__name__ for t in missing)


def test_every_handler_is_for_a_command_type_and_a_coroutine_function() -> None:
    extra = set(HANDLERS) - command_types()
    assert not extra, sorted(t.__name__ for t in extra)
    not_async = [t.__name__ for t, h in HANDLERS.items() if not inspect.iscoroutinefunction(h)]
    assert not not_async, not_async
