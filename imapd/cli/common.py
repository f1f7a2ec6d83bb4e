"""What every `imapd` subcommand shares: the event loop, the configuration from flags, the
store for one command, and small output helpers.

Owns: `run` (one asyncio run, uvloop when installed), `config_from_args` (flags over
``IMAPD_*`` over the TOML file over defaults), `with_store` (open the store, act, close, and
tell a running server over its control socket that change_log grew), `add_data_dir` (the
``--data-dir``/``--config`` flags). Imports no other imapd.cli module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from imapd import config as config_mod
from imapd import control
from imapd.config import Config
from imapd.fetch import prerender
from store.api import Store
from store.changes import Origin
from store.open import open_store, private_dir

#: The subparsers of `imapd` (or of one of its commands) a family adds its parsers to.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Who CLI changes come from (events: ``service`` "cli").
CLI_ORIGIN = Origin(service="cli")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where the SQLite store lives (default ./var)")
    p.add_argument(
        "--store",
        metavar="URL",  # issue 18: store/open.py, docs/postgresql.md
        help="the store: postgresql://user:pw@host/db (default: SQLite in"
        " --data-dir; also $IMAPD_STORE)",
    )
    p.add_argument("--config", help="TOML configuration file")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(coro: Coroutine[Any, Any, int]) -> int:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def config_from_args(args: argparse.Namespace) -> Config:
    """Flags over ``IMAPD_*`` environment variables over the TOML file over defaults."""
    overrides: dict[str, Any] = {"data_dir": Path(args.data_dir) if args.data_dir else None}
    for name in ("listen", "listen_tls"):
        if getattr(args, name, None):
            flag = "--" + name.replace("_", "-")
            overrides[name] = config_mod.parse_hostport(getattr(args, name), flag)
    for name in ("lmtp", "notify_socket", "servername", "log_format"):
        overrides[name] = getattr(args, name, None)
    for name in ("tls_cert_file", "tls_key_file", "pid_file"):
        value = getattr(args, name, None)
        overrides[name] = Path(value) if value else None
    if (workers := getattr(args, "workers", None)) is not None:  # docs/workers.md
        overrides["workers"] = workers or os.cpu_count() or 1
    config_path = getattr(args, "config", None)
    return config_mod.load(Path(config_path) if config_path else None, os.environ, **overrides)


async def with_store(config: Config, action: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    """Open the store, run ``action``, close; then, if change_log grew, tell a running
    server (it publishes the new rows in commit order; see imapd/control/)."""
    private_dir(config.data_dir)  # 0700 when new (store/open.py)
    store = await open_store(
        config.db_path,
        lambda changes: None,
        synchronous=config.sqlite_synchronous,
        scrypt_n=config.scrypt_n,
        prerender=prerender,
    )
    grew = False
    try:
        before = await store.change_log_head()
        try:
            return await action(store)
        finally:  # also after a failure part-way (an import's earlier batches stand)
            grew = await store.change_log_head() != before
    finally:
        await store.close()
        if grew:
            await control.notify_changed(config.data_dir)


def fail(text: str) -> int:
    print(f"imapd: {text}", file=sys.stderr)
    return 1


def print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))
