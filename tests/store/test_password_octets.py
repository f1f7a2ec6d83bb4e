"""Passwords are hashed as the octets the client sent (scripts/fuzz: a LOGIN password that
was not UTF-8 reached scrypt as lone surrogates and answered NO [SERVERBUG])."""

from __future__ import annotations

from store.passwords import hash_password, verify_password


def test_a_password_that_is_not_utf8_hashes_as_its_octets() -> None:
    sent = b"\x81\xeepw\xff".decode("utf-8", "surrogateescape")  # as the IMAP parser hands it
    stored = hash_password(sent, n=2)
    assert verify_password(sent, stored)
    assert not verify_password(b"\x81\xeepw\xfe".decode("utf-8", "surrogateescape"), stored)
    assert not verify_password("\u0081\u00eepw\u00ff", stored)  # other octets in UTF-8


def test_utf8_passwords_hash_as_before() -> None:
    assert verify_password("pässword", hash_password("pässword", n=2))
    assert not verify_password("passwörd", hash_password("pässword", n=2))
