"""The authentication cache end to end (store/authcache.py; issue 17 item 6): a real server
on a loopback port, real LOGINs, the CLI as another process. Whether a LOGIN ran a
verification is read from the server's own counters over the control socket
(``{"op": "stats"}``, `imapd stats`), not from timing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from imapd import control
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def stats(running: RunningServer) -> dict[str, Any] | None:
    answer = asyncio.run(control.request(running.config.data_dir, control.Stats()))
    assert answer["ok"], answer
    cache: dict[str, Any] | None = answer["auth_cache"]
    return cache


def login(running: RunningServer, user: str, password: str) -> str:
    """One connection, LOGIN, LOGOUT; the tagged LOGIN line."""
    c = RawClient.connect(running.host, running.port)
    try:
        assert c.response().startswith("* OK")
        tagged = c.command("a", f'LOGIN {user} "{password}"')[-1]
        c.command("z", "LOGOUT")
        return tagged
    finally:
        c.close()


def imapd_cli(running: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(running.config.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_repeat_login_is_not_verified_again(server: RunningServer) -> None:
    before = stats(server)
    assert before is not None and before["hits"] == 0 and before["stored"] == 0
    assert login(server, "alice", PASSWORD).startswith("a OK")
    first = stats(server)
    assert first is not None
    assert (first["misses"], first["stored"], first["hits"]) == (1, 1, 0)  # verified once
    assert login(server, "alice", PASSWORD).startswith("a OK")
    second = stats(server)
    assert second is not None
    assert (second["misses"], second["stored"], second["hits"]) == (1, 1, 1)  # no scrypt


def test_wrong_password_after_a_cached_success_still_fails(server: RunningServer) -> None:
    assert login(server, "alice", PASSWORD).startswith("a OK")
    assert login(server, "alice", PASSWORD).startswith("a OK")
    assert login(server, "alice", "not-it").startswith("a NO [AUTHENTICATIONFAILED]")
    after = stats(server)
    assert after is not None
    assert after["hits"] == 1 and after["stored"] == 1  # the failure was verified, not kept
    assert after["misses"] == 2


def test_passwd_from_the_cli_while_running_makes_the_old_password_fail(
    server: RunningServer,
) -> None:
    assert login(server, "alice", PASSWORD).startswith("a OK")
    assert login(server, "alice", PASSWORD).startswith("a OK")
    cached = stats(server)
    assert cached is not None and cached["hits"] == 1
    changed = imapd_cli(server, "user", "passwd", "alice", "--password", "fresh-one")
    assert changed.returncode == 0, changed.stderr
    # The very next LOGIN with the old password fails: the stored hash it was cached
    # against is gone (another process changed it; no notice is needed).
    assert login(server, "alice", PASSWORD).startswith("a NO [AUTHENTICATIONFAILED]")
    assert login(server, "alice", "fresh-one").startswith("a OK")
    after = stats(server)
    assert after is not None and after["hits"] == 1


def test_user_deleted_from_the_cli_cannot_log_in(server: RunningServer) -> None:
    assert login(server, "bob", PASSWORD).startswith("a OK")
    deleted = imapd_cli(server, "user", "delete", "bob")
    assert deleted.returncode == 0, deleted.stderr
    assert login(server, "bob", PASSWORD).startswith("a NO [AUTHENTICATIONFAILED]")


def test_ttl_zero_disables(server_factory: Any) -> None:
    running: RunningServer = server_factory(auth_cache_ttl=0.0)
    running.add_user("alice")
    assert login(running, "alice", PASSWORD).startswith("a OK")
    assert login(running, "alice", PASSWORD).startswith("a OK")
    assert stats(running) is None
    shown = imapd_cli(running, "stats")
    assert shown.returncode == 0, shown.stderr
    assert "auth cache: off" in shown.stdout


def test_stats_cli(server: RunningServer) -> None:
    assert login(server, "alice", PASSWORD).startswith("a OK")
    assert login(server, "alice", PASSWORD).startswith("a OK")
    shown = imapd_cli(server, "stats", "--json")
    assert shown.returncode == 0, shown.stderr
    cache = json.loads(shown.stdout)["auth_cache"]
    assert cache["hits"] == 1 and cache["entries"] == 1 and cache["ttl"] == 300.0
