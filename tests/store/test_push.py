"""XAPPLEPUSHSERVICE registrations (store/sqlite/push.py): stored, replaced, published."""

from __future__ import annotations

from store.changes import ApplePushRegistered
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True


async def test_register_push_stores_and_publishes(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.create_mailbox(bob.id, "Notes", ORIGIN)
    env.take()
    registered = await store.register_push(
        bob.id,
        2,
        "ACCOUNT",
        "TOKEN",
        "com.apple.mobilemail",
        ["inbox", "Notes", "Gone"],
        ORIGIN,
    )
    assert registered == ("INBOX", "Notes")  # a missing mailbox is left out
    (change,) = env.take()
    assert isinstance(change, ApplePushRegistered)
    assert (
        change.user,
        change.aps_version,
        change.account_id,
        change.device_token,
        change.subtopic,
        change.mailboxes,
    ) == ("bob", 2, "ACCOUNT", "TOKEN", "com.apple.mobilemail", ("INBOX", "Notes"))
    assert change.origin == ORIGIN
    assert env.logged()[-1] == change
    (device,) = await store.push_devices(bob.id)
    assert device.mailboxes == ("INBOX", "Notes")
    # The device registers again (every client start): replaced, not duplicated.
    await store.register_push(
        bob.id, 2, "ACCOUNT", "TOKEN", "com.apple.mobilemail", ["INBOX"], ORIGIN
    )
    (device,) = await store.push_devices()
    assert device.mailboxes == ("INBOX",)
    # Deleting the user removes the registrations.
    await store.delete_user("bob")
    assert await store.push_devices() == []
