"""What the Docker-driven tests share: find a working engine, or skip (fail when CI=true).

Needs a Docker engine (scripts/docker-setup installs and starts one, and builds the Debian base
image). On a developer machine without one these tests are skipped; in CI (``CI=true``) its
absence is a failure, as for the interop clients.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}, and CI=true: run scripts/docker-setup first (.ci/run does)")
    pytest.skip(f"{reason} (scripts/docker-setup installs and starts one)")


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def require_engine() -> None:
    """Skip (or fail in CI) unless `docker info` answers."""
    if shutil.which("docker") is None:
        unavailable("no docker command")
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except subprocess.TimeoutExpired:
        unavailable("`docker info` did not answer within 30 s")
    if info.returncode != 0:
        unavailable(f"no Docker engine: {info.stderr.strip()[:200]}")


def require_image(image: str) -> None:
    if run(["docker", "image", "inspect", image]).returncode != 0:
        unavailable(f"no image {image} (scripts/docker-setup builds it)")
