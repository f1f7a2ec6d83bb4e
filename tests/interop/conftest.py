"""The interop tests' fixture; their helpers are tests/helpers/interop.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The client's HOME (configs, Maildirs, state), inside the test's tmp_path."""
    h = tmp_path / "home"
    (h / ".config").mkdir(parents=True)
    return h
