"""What git tracks: nothing a command generates on one machine.

A committed `.venv` once tied the repository to the interpreter of the machine that made it
(its `bin/python3` linked into that machine's pyenv), and `scripts/serve` failed everywhere
else. Virtual environments, data directories, caches, build metadata and databases are made by
the commands themselves and belong in .gitignore, never in a commit.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.docker_env import ROOT, in_ci

#: Generated paths, as regular expressions over `git ls-files` paths.
GENERATED = {
    "a virtual environment": r"(^|/)\.?venv/",
    "a data directory": r"^var/",
    "Python bytecode": r"(^|/)__pycache__/|\.py[co]$",
    "build metadata": r"\.egg-info(/|$)|^build/|^dist/",
    "a tool cache": r"(^|/)\.(pytest_cache|mypy_cache|ruff_cache|hypothesis)/",
    "a SQLite database": r"\.(sqlite3?|db)(-wal|-shm|-journal)?$",
}


def tracked_files() -> list[str]:
    if not (ROOT / ".git").exists():
        if in_ci():
            pytest.fail("CI=true but the tests do not run from a git checkout")
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    return [p for p in listing.stdout.decode().split("\0") if p]


@pytest.mark.parametrize("what", sorted(GENERATED))
def test_nothing_generated_is_tracked(what: str) -> None:
    pattern = re.compile(GENERATED[what])
    files = tracked_files()
    assert files, "git ls-files listed nothing"
    offending = [path for path in files if pattern.search(path)]
    assert not offending, f"{what} is tracked by git: {offending[:10]} (git rm --cached it)"


def test_the_patterns_catch_what_they_name() -> None:
    """Each pattern matches a typical path of its kind and leaves ordinary sources alone."""
    examples = {
        "a virtual environment": ".venv/bin/python3",
        "a data directory": "var/imapd.sqlite3",
        "Python bytecode": "imapd/__pycache__/cli.cpython-311.pyc",
        "build metadata": "imapd.egg-info/PKG-INFO",
        "a tool cache": ".mypy_cache/3.11/cache.db",
        "a SQLite database": "tests/data/store.sqlite3-wal",
    }
    for what, path in examples.items():
        assert re.search(GENERATED[what], path), (what, path)
        for ordinary in (
            "imapd/server.py",
            "store/migrations/0001_init.sql",
            "scripts/serve",
            "docker/imapd.toml",
            "tests/store/test_sqlite.py",
        ):
            assert not re.search(GENERATED[what], ordinary), (what, ordinary)
