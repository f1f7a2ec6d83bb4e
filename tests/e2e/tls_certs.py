"""Self-signed test certificates made with the openssl CLI (no Python dependency), and the
client contexts that trust them."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_openssl() -> str:
    """The openssl program; skip when missing, fail under CI=true (Debian: openssl)."""
    path = shutil.which("openssl")
    if path is None:
        if in_ci():
            pytest.fail("openssl not installed and CI=true")
        pytest.skip("openssl not installed (Debian package openssl)")
    return path


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """Trusts exactly this certificate and checks the name (127.0.0.1 is in its SAN)."""
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())


def make_cert(directory: Path, name: str = "imapd-test") -> Cert:
    """An EC P-256 self-signed certificate for localhost and 127.0.0.1, CN ``name``."""
    openssl = require_openssl()
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Cert(cert, key)
