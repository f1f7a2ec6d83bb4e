"""Where the read-only specification files live: ``shared/reference`` beside the checkout
(as CI lays it out), else the development machine's ``/work/shared/reference``."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = (_ROOT.parent / "shared" / "reference", Path("/work/shared/reference"))


def reference_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shared/reference not found (looked in {_CANDIDATES})")


REFERENCE = reference_dir()
