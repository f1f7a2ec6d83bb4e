"""The store behind its interface (store/README.md), as a check over the source text.

ruff's banned-api rules (pyproject.toml, store/ruff.toml, store/sqlite/ruff.toml) refuse the
imports; this also catches a backend named in a docstring or an annotation string, and says
the rule in one place: only store/sqlite/ speaks SQLite, only store/open.py picks the backend.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("imapd", "notify", "store")
#: The one place allowed to name the backend (it picks it).
PICKER = "store/open.py"


def sources() -> dict[str, str]:
    out: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[path.relative_to(ROOT).as_posix()] = path.read_text("utf-8")
    return out


def test_only_the_picker_names_the_sqlite_backend() -> None:
    # The done-when check of issue 15: grep "import aiosqlite\|SqliteStore" outside store/sqlite/.
    pattern = re.compile(r"import aiosqlite|SqliteStore")
    found = sorted(
        f"{name}:{n}"
        for name, text in sources().items()
        if not name.startswith("store/sqlite/")
        for n, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    )
    assert found, "the picker names the backend: the pattern must match something"
    assert {f.split(":")[0] for f in found} == {PICKER}, found


def test_store_rules_outside_the_backend_speak_no_sql() -> None:
    # Pure rules (quota, metadata, ACL, names, expiry) and MIME parsing import no database.
    driver = re.compile(r"^\s*(import|from)\s+(aiosqlite|sqlite3)\b", re.MULTILINE)
    offenders = [
        name
        for name, text in sources().items()
        if name.startswith("store/")
        and not name.startswith("store/sqlite/")
        and name != PICKER
        and driver.search(text)
    ]
    assert offenders == []


def test_migrations_ship_with_the_backend_under_their_ids() -> None:
    from store.sqlite.migrate import available

    # Packaged: found through importlib.resources in store.sqlite, versions 1.. in order.
    assert [m.version for m in available()][:8] == list(range(1, 9))
    files = sorted(p.name for p in (ROOT / "store/sqlite/migrations").glob("*.sql"))
    assert files[:8] == [
        "0001_initial.sql",
        "0002_append_view.sql",
        "0003_events.sql",
        "0004_metadata.sql",
        "0005_push.sql",
        "0006_search_text.sql",
        "0007_acl.sql",
        "0008_quota.sql",
    ]
    assert not (ROOT / "store/migrations").exists()
