"""Helpers for ``scripts/bench``: a raw asyncio IMAP client, a deterministic message corpus,
peer-server control (our imapd and a private Dovecot) with per-process CPU accounting, the
benchmark sections and the report.

Sections live in their own modules and register in ``SECTIONS`` (see ``scripts/bench``):
``store`` (APPEND / FETCH / SEARCH) is the default; ``notify`` (NOTIFY/IDLE listeners) and
``qresync`` (resync figure) are to be added the same way.
"""
