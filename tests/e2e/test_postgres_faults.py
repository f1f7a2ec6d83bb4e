"""PostgreSQL going away, end to end (issue 18, "Bad input and faults"): `imapd serve --store
URL` on a throwaway cluster of the test's own (it is stopped and started again, so not the
shared one of tests/helpers/pg.py).

While serving: a command that needs the store gets ``NO [UNAVAILABLE]``, the session stays,
and once PostgreSQL is back the next command on that same session works, with every change
acknowledged before still there. At start: a store that is down, or whose schema is newer
than the program, is refused with a message naming the URL (password masked), exit 2.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.test_postgres_store import MESSAGE, Serve, imapd
from tests.helpers.pg import PgCluster, run_sync, start_cluster, stop_cluster
from tests.rawclient import RawClient


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def test_postgres_restart_while_serving(own_cluster: PgCluster, tmp_path: Path) -> None:
    dsn = run_sync(own_cluster.database)
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=tmp_path / "cli", store=dsn)
    assert added.returncode == 0, added.stderr
    server = Serve(tmp_path / "a", dsn)
    try:
        c = RawClient.connect("127.0.0.1", server.port)
        c.login("carol", "pw")
        c.ok("a1", "SELECT INBOX")
        c.append("a2", "INBOX", MESSAGE.decode())  # acknowledged before the outage
        stopped = own_cluster.stop()
        assert stopped.returncode == 0, stopped.stderr
        try:
            down = c.command("a3", "STATUS INBOX (MESSAGES)")
            assert down[-1].startswith("a3 NO [UNAVAILABLE]"), down
            c.send(f"a4 APPEND INBOX {{{len(MESSAGE)}+}}\r\n".encode() + MESSAGE + b"\r\n")
            refused = c.until_tagged("a4")
            assert refused[-1].startswith("a4 NO [UNAVAILABLE]"), refused
        finally:
            started = own_cluster.start()
            assert started.returncode == 0, started.stderr
        # The same session, no reconnect: service resumes by itself.
        back = c.ok("a5", "STATUS INBOX (MESSAGES)")
        assert '"INBOX" (MESSAGES 1)' in back[0] or "INBOX (MESSAGES 1)" in back[0], back
        c.append("a6", "INBOX", MESSAGE.decode())
        after = c.ok("a7", "STATUS INBOX (MESSAGES)")
        assert "MESSAGES 2)" in after[0], after
        # Every change acknowledged is there, the one refused is not (UIDs 1 and 2).
        c.ok("a8", "SELECT INBOX")
        fetched = c.ok("a9", "UID FETCH 1:* (UID)")
        assert [r for r in fetched if r.startswith("* ")] == [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
        ]
        c.ok("a10", "LOGOUT")
    finally:
        server.stop()


def test_a_store_down_at_start_is_refused_with_exit_2(
    own_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = run_sync(own_cluster.database)
    database = dsn.split("/")[-1].split("?")[0]
    url = f"postgresql://carol:s3cret@127.0.0.1:{own_cluster.port}/{database}"
    own_cluster.stop()
    try:
        served = subprocess.run(
            Serve.command(tmp_path / "a", url),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        own_cluster.start()
    assert served.returncode == 2, served.stderr
    assert "cannot reach the PostgreSQL store at postgresql://carol:***@127.0.0.1:" in (
        served.stderr
    )
    assert "s3cret" not in served.stderr and "Traceback" not in served.stderr


def test_an_older_instance_refuses_a_newer_schema(own_cluster: PgCluster, tmp_path: Path) -> None:
    """Two instances of different versions on one database: the older (this program, facing
    a migration it does not know) refuses to serve, naming that migration."""
    dsn = run_sync(own_cluster.database)

    async def newer() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (999, '0999_newer.sql')"
            )
        finally:
            await conn.close()

    asyncio.run(newer())
    served = subprocess.run(
        Serve.command(tmp_path / "a", dsn), capture_output=True, text=True, timeout=60, check=False
    )
    assert served.returncode == 2, served.stderr
    assert "0999_newer.sql" in served.stderr and "lacks" in served.stderr, served.stderr
    assert "Traceback" not in served.stderr
