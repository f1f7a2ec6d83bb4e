"""docker-compose.cluster.yml end to end (issue 18): PostgreSQL built from docker/postgres,
two imapd instances on it, and a tests container (tests/compose/cluster.py) that delivers
through one instance and reads, IDLEs and NOTIFYs on the other; its exit code and its
"N passed, N failed" line are this test's verdict (tests/test_compose.py's `run_stack`).

Needs what tests/test_compose.py needs (scripts/docker-setup); skipped without it on a
developer machine, failing in CI. Marked slow as that test is: the first build installs
PostgreSQL into its image (a minute or two), later runs take seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_compose import PROJECT, _compose_command, run_stack

pytestmark = pytest.mark.slow

COMPOSE_FILE = "docker-compose.cluster.yml"


def test_cluster_stack(tmp_path: Path) -> None:
    run_stack([*_compose_command(PROJECT + "cluster"), "-f", COMPOSE_FILE], tmp_path)
