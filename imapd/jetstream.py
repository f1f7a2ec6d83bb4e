"""Wiring of the JetStream sink (notify/jetstream.py) into the server and its configuration.

Owns: the configuration check for ``event_notifier = "jetstream"``, the sink's `options`
from the configuration, and starting the sink inside the server (cursor in the store's
``event_cursors``, woken by the bus, status file ``DATA_DIR/jetstream.status.json``).
``imapd notifyd --method jetstream`` is imapd/cli/jetstream.py. docs/jetstream.md is the
user's side.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from imapd.config import Config, ConfigError

if TYPE_CHECKING:
    from imapd.server import Server
    from notify.jetstream import JetStreamSink
    from notify.jetstream_names import Options

log = logging.getLogger("imapd.jetstream")

STATUS_FILE = "jetstream.status.json"  # the server's sink, in the data directory


def options(config: Config, **flags: object) -> Options:
    """The sink's options from the configuration; non-None ``flags`` win."""
    from notify.jetstream_names import Options

    def pick(name: str) -> object:
        value = flags.get(name)
        return value if value is not None else getattr(config, f"jetstream_{name}")

    url = pick("url")
    if not isinstance(url, str) or not url:
        raise ValueError("jetstream: no NATS URL (--url, or jetstream_url in the TOML file)")
    creds = pick("creds")
    return Options(
        url=url,
        stream=str(pick("stream")),
        subject_prefix=str(pick("subject_prefix")),
        creds=str(creds) if creds is not None else None,
        max_age=float(config.jetstream_max_age),
        max_bytes=int(config.jetstream_max_bytes),
        max_inflight=int(config.jetstream_max_inflight),
    )


def check_config(config: Config) -> None:
    """``event_notifier = "jetstream"``: a URL, a valid stream and prefix, no notifysocket."""
    if config.notify_socket:
        raise ConfigError(
            "event_notifier: jetstream publishes to NATS itself; notify_socket "
            "must not be set with it"
        )
    try:
        options(config)
    except ValueError as exc:
        raise ConfigError(f"jetstream: {exc}") from None
    if (
        config.jetstream_max_age <= 0
        or config.jetstream_max_bytes <= 0
        or config.jetstream_max_inflight <= 0
    ):
        raise ConfigError(
            "jetstream_max_age, jetstream_max_bytes, jetstream_max_inflight: must be > 0"
        )


async def start_in_server(server: Server, *, listen: bool = True) -> JetStreamSink:
    """The server's sink: started before the listeners, so a first start's cursor is the
    outbox's end; woken by every publish (a bus listener never blocks)."""
    from imapd.server import event_format
    from notify.jetstream import JetStreamSink
    from notify.jetstream_state import StoreCursor

    config = server.config
    policy, fmt = event_format(config)
    sink = JetStreamSink(
        server.store,
        options(config),
        StoreCursor(server.store),
        policy=policy,
        fmt=fmt,
        status_file=config.data_dir / STATUS_FILE,
    )
    await sink.start()
    if listen:  # under a cluster lease the cluster routes the bus to it (docs/workers.md)
        server.bus.add_listener(sink.wake)
    server.session_events = "access" in config.event_groups
    log.info("events to NATS JetStream %s, stream %s", sink.options.url, sink.options.stream)
    return sink
