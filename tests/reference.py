"""Where the reference files the tests compare against live: ``tests/data`` (see its README),
inside the repository, so that a fresh clone's `scripts/test` needs nothing beside it."""

from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "data"
