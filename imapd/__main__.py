"""`python -m imapd`: the same as the `imapd` console command."""

import sys

from imapd.cli import main

sys.exit(main())
