"""The control socket (``DATA_DIR/control.sock``): how admin commands talk to a running server."""

from imapd.control.server import *  # noqa: F403
from imapd.control.server import _addressable as _addressable
