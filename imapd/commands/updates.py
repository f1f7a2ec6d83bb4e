"""CANCELUPDATE (RFC 5267 §4.3.5) and the store side of updating contexts (RFC 5267 §4.3):
opening one for SEARCH/SORT ``RETURN (UPDATE)``, and evaluating the changed messages when
the selected mailbox's updates go out (imapd/listening.py). The contexts themselves and
their responses are pure, in imapd/rfc5267.py; docs/context.md tells the whole story.

Cost: one evaluation per context and flush, over the changed UIDs only: from the change's
facts when the program allows it (no query), else one store search restricted to those UIDs
(its text matching runs in the store's worker thread). A SORT context that gains members
needs the positions: the store's sort order of the mailbox (computed off the event loop and
shared between sessions while the mailbox is unchanged) and its ranks, built in a worker
thread for big mailboxes and shared too. At most ``[limits] max_update_contexts`` per session.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Response
from imapd.protocol.values import FetchAtt, SearchKey
from imapd.rfc5267 import (
    TIME_KEYS,
    UpdateContext,
    live_criterion,
    match_facts,
    mentions,
    noupdate,
    thaw,
)
from store.api import Criterion
from store.errors import StoreError
from store.ranges import number_ranges

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from imapd.selected import SelectedView

log = logging.getLogger(__name__)


async def handle_cancelupdate(session: Context, cmd: c.CancelUpdate) -> Outcome:
    """CANCELUPDATE "tag" ... (RFC 5267 §4.3.5; example there: ``B04 CANCELUPDATE "B01"``).
    Every tag must name a context of this session, else NO and nothing is cancelled."""
    session.require_view()
    if not all(session.contexts.in_use(tag) for tag in cmd.tags):
        raise CommandRefused("No updating context has that tag")
    session.contexts.cancel(cmd.tags)
    return ok("No further updates")


def prepare_update(
    session: Context, tag: str, update: tuple[FetchAtt, ...] | None, key: SearchKey
) -> Criterion | None:
    """Before a searching command with UPDATE runs: BAD if its tag names a live context
    ("rejected ... with a BAD response", RFC 5267 §4.3, so it has no effect), and its live
    program, with sequence numbers and ``$`` as they are now. None without UPDATE."""
    if update is None:
        return None
    if session.contexts.in_use(tag):
        raise BadCommand("Tag reuse: an updating context has this tag", tag=tag)
    view = session.require_view()
    return live_criterion(key, view, session.saved_search)


def open_context(
    session: Context,
    cmd: c.Search | c.Sort,
    criterion: Criterion | None,
    results: Sequence[int],
) -> list[Response]:
    """Keep ``cmd``'s result (UIDs, in the requested order) updated, or say why not:
    ``* NO [NOUPDATE "tag"]`` (RFC 5267 §4.3.1; the other return options are honoured)."""
    if criterion is None or cmd.update is None:
        return []
    contexts = session.contexts
    if mentions(cmd.key, TIME_KEYS):
        return [noupdate(cmd.tag, "OLDER and YOUNGER change with time alone: no updates")]
    if len(contexts) >= contexts.limit:
        return [noupdate(cmd.tag, f"Too many contexts (limit {contexts.limit})")]
    sort = cmd.criteria if isinstance(cmd, c.Sort) else None
    contexts.add(UpdateContext(cmd.tag, cmd.uid, criterion, sort, cmd.update, list(results)))
    log.info(  # RFC 5267 §6: context creation is logged, for administrative remedies
        "session %s: update context %s (%s, %d results)",
        session.id,
        cmd.tag,
        "SORT" if sort else "SEARCH",
        len(results),
    )
    return []


async def evaluate_contexts(session: Context, view: SelectedView, *, allow_flags: bool) -> None:
    """Evaluate the messages that changed for each context (before the view's flush; the
    verdicts are applied by `UpdateContexts.render` after it). Flag changes wait while
    the flag FETCHes do (``allow_flags``)."""
    contexts = session.contexts
    if not contexts:
        return
    recent = view.recent
    for ctx in contexts.all():
        uids = ctx.take(allow_flags=allow_flags)
        if not uids:
            continue
        verdicts: dict[int, bool] = {}
        for uid in uids:
            facts = contexts.facts.get(uid)
            verdict = None if facts is None else match_facts(ctx.criterion, uid, facts, recent)
            if verdict is None:
                break
            verdicts[uid] = verdict
        else:
            ctx.verdicts.update(verdicts)
            uids = set()
        if uids:
            criterion = Criterion(
                "AND",
                children=(
                    Criterion("UIDS", tuple(number_ranges(uids))),
                    thaw(ctx.criterion, recent),
                ),
            )
            try:
                hits = set(await session.store.search(view.mailbox_id, criterion))
            except StoreError as exc:  # disk error: tried again at the next flush
                log.warning("session %s: context %s not updated: %s", session.id, ctx.tag, exc)
                ctx.dirty |= uids
                continue
            ctx.verdicts.update((u, u in hits) for u in uids)
        if ctx.sort is not None and ctx.joining():
            # the store's live key per UID: new members placed by bisection (store/sortstate.py)
            ctx.rank = await session.store.sort_keys(view.mailbox_id, ctx.sort)
    if not any(ctx.held or ctx.dirty for ctx in contexts.all()):
        contexts.facts.clear()
