"""The Docker packaging end to end: build the image and run docker-compose.yml's stack.

`docker-compose -p imapdtestXXXXXXXX up --build --abort-on-container-exit --exit-code-from tests`
builds the image, starts imapd (healthy by `imapd healthcheck`), notifyd and the tests
container, whose tests/compose/integration.py delivers by LMTP, reads by IMAP, sees the
delivery in IDLE and finds notifyd's MessageNew event; its exit code is this test's verdict.
The stack is always taken down (`down -v`) and its logs are shown when it fails.

Needs a Docker engine and Compose (v1 `docker-compose` or v2 `docker compose`); see
scripts/docker-setup. Without them the test is skipped on a developer machine and fails in CI
(``CI=true``), as the interop tests do. Marked slow: about 10 s with cached images, a minute
or two when the image is built from scratch (`-m "not slow"` leaves it out).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.docker_env import ROOT, require_engine, run, unavailable

#: Compose project: "imapdtest" plus a suffix of this run, so that two runs at once (two
#: checkouts, two sessions in one) never share containers, volumes or the network.
PROJECT = os.environ.get("IMAPD_COMPOSE_PROJECT") or f"imapdtest{uuid.uuid4().hex[:8]}"
UP_TIMEOUT = 900  # seconds: a fresh build installs the dependencies from PyPI

pytestmark = pytest.mark.slow


def _compose_command(project: str = PROJECT) -> list[str]:
    """Compose v1 (Debian 12's docker-compose) if present, else v2's `docker compose`."""
    require_engine()
    if shutil.which("docker-compose"):
        return ["docker-compose", "-p", project]
    if run(["docker", "compose", "version"]).returncode != 0:
        unavailable("neither docker-compose nor `docker compose` is installed")
    return ["docker", "compose", "-p", project]


def test_compose_stack(tmp_path: Path) -> None:
    run_stack(_compose_command(), tmp_path)


def run_stack(compose: list[str], tmp_path: Path) -> None:
    """`up` the stack ``compose`` names (tests/test_compose_cluster.py: another file) until
    its tests container exits; fail with the logs unless it printed "N passed, 0 failed"."""
    down = [*compose, "down", "-v", "--remove-orphans"]
    run(down, timeout=120)  # a stack left over by an interrupted run
    log_path = tmp_path / "compose-up.log"
    try:
        with log_path.open("w") as log:
            try:
                up = subprocess.run(
                    [
                        *compose,
                        "up",
                        "--build",
                        "--no-color",
                        "--abort-on-container-exit",
                        "--exit-code-from",
                        "tests",
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=UP_TIMEOUT,
                    check=False,
                )
                code: int | str = up.returncode
            except subprocess.TimeoutExpired:
                code = f"timeout after {UP_TIMEOUT} s"
        tests_log = run([*compose, "logs", "--no-color", "tests"], timeout=60).stdout
        summary = re.findall(r"(\d+) passed, (\d+) failed", tests_log)
        if code != 0 or not summary or summary[-1][1] != "0":
            stack_log = run([*compose, "logs", "--no-color", "--timestamps"], timeout=60)
            up_tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
            # Shown by pytest with the failure (captured output), whole; the message has tails.
            print("=== docker-compose up (last 60 lines) ===\n" + up_tail)  # noqa: T201
            print("=== docker-compose logs ===\n" + stack_log.stdout + stack_log.stderr)  # noqa: T201
            pytest.fail(
                f"compose stack failed (exit code {code}, summary {summary}):\n"
                + "\n".join(tests_log.splitlines()[-40:])
            )
    finally:
        run(down, timeout=120)
