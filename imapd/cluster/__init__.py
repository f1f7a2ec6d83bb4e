"""Several server processes on one store (docs/workers.md).

imapd/cluster/node.py: `Cluster`, one process's heartbeat, leases (roles), session registry
and kicks; imapd/cluster/roles.py: the roles; imapd/cluster/wake.py: the SQLite wake channel;
imapd/cluster/supervisor.py: ``imapd serve --workers N``; imapd/cluster/admin.py: ``who`` and
``kick`` through the store when no control socket answers.
"""

from imapd.cluster.node import Cluster

__all__ = ["Cluster"]
