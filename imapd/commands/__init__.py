"""HANDLERS: command type -> async handler. A test checks every Command type has one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from imapd.commands import (
    acl,
    auth,
    compress,
    fetch,
    mailbox,
    message,
    metadata,
    notify,
    push,
    quota,
    replace,
    select,
    sort,
    updates,
    urlauth,
)
from imapd.protocol import commands as c

if TYPE_CHECKING:
    from imapd.commands.base import Outcome
    from imapd.commands.context import Context

HANDLERS: dict[type[Any], Callable[[Context, Any], Awaitable[Outcome]]] = {
    c.Capability: auth.handle_capability,
    c.Noop: auth.handle_noop,
    c.Check: auth.handle_noop,
    c.Logout: auth.handle_logout,
    c.Id: auth.handle_id,
    c.Enable: auth.handle_enable,
    c.Namespace: auth.handle_namespace,
    c.SetAcl: acl.handle_setacl,
    c.DeleteAcl: acl.handle_deleteacl,
    c.GetAcl: acl.handle_getacl,
    c.ListRights: acl.handle_listrights,
    c.MyRights: acl.handle_myrights,
    c.StartTLS: auth.handle_starttls,
    c.Login: auth.handle_login,
    c.Authenticate: auth.handle_authenticate,
    c.Select: select.handle_select,
    c.Create: mailbox.handle_create,
    c.Delete: mailbox.handle_delete,
    c.Rename: mailbox.handle_rename,
    c.Subscribe: mailbox.handle_subscribe,
    c.Unsubscribe: mailbox.handle_subscribe,
    c.List: mailbox.handle_list,
    c.Status: mailbox.handle_status,
    c.Append: mailbox.handle_append,
    c.Close: select.handle_close,
    c.Unselect: select.handle_unselect,
    c.Expunge: message.handle_expunge,
    c.Search: message.handle_search,
    c.Fetch: fetch.handle_fetch,
    c.Store: message.handle_store,
    c.Copy: message.handle_copy,
    c.Idle: message.handle_idle,
    c.GetMetadata: metadata.handle_getmetadata,
    c.SetMetadata: metadata.handle_setmetadata,
    c.Compress: compress.handle_compress,
    c.XApplePushService: push.handle_xapplepushservice,
    c.GetQuota: quota.handle_getquota,
    c.GetQuotaRoot: quota.handle_getquotaroot,
    c.SetQuota: quota.handle_setquota,
    c.Notify: notify.handle_notify,
    c.Sort: sort.handle_sort,  # RFC 5256, RFC 5957, RFC 5267 ESORT
    c.Thread: sort.handle_thread,
    c.Replace: replace.handle_replace,  # RFC 8508
    c.CancelUpdate: updates.handle_cancelupdate,  # RFC 5267 §4.3.5
    c.GenUrlAuth: urlauth.handle_genurlauth,  # RFC 4467
    c.ResetKey: urlauth.handle_resetkey,
    c.UrlFetch: urlauth.handle_urlfetch,
}
