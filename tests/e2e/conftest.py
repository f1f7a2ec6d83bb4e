"""Fixtures of the end-to-end tests that run the real `python -m imapd` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.process import Proc, imapd


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[Proc]:
    """`imapd serve` (not started yet) on a store with user carol, password pw."""
    data = tmp_path / "data"
    result = imapd("user", "add", "carol", "--password", "pw", data_dir=data)
    assert result.returncode == 0, result.stderr
    p = Proc(data)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait()
    if p.proc is not None and p.proc.stdout is not None:
        p.proc.stdout.close()  # a server that exited by itself (a start-up failure) too
