"""The README's two commands on a fresh Debian machine, as a new user runs them.

A container from the project's Debian base image (scripts/docker-setup builds it: Debian 12 with
`python3` and `python3-venv` and nothing else of ours) is given `git archive HEAD` of this
checkout, i.e. exactly what a `git clone` holds: nothing generated on this machine (no `.venv`,
no caches, no database) can help it. As an unprivileged user it then runs

1. `scripts/serve`, which must replace a foreign `.venv` (one linking to another machine's
   interpreter, as the once-committed one did) with its own, install, create the demo user
   and greet with `* OK` on 127.0.0.1:1143; `demo`/`demo` must log in; SIGTERM stops it;
2. `scripts/test`, which must make the test install, pass ruff and mypy over the whole tree,
   and run a cross-section of the suite there: the protocol core, the transcripts, the store
   and real clients against a real server. The whole suite runs in the same CI run on the CI
   machine itself; running all of it a second time in here (about half of CI's time) would
   prove nothing more about a fresh install, which any selection goes through the same way.

This is the check that a committed virtualenv or a missing install step would fail. Marked
slow (a few minutes: everything is installed from PyPI, as a user's first run does).
"""

from __future__ import annotations

import faulthandler
import re
import subprocess

import pytest

from tests.docker_env import ROOT, in_ci, require_engine, require_image, unavailable

BASE_IMAGE = "python:3.11-slim"  # scripts/docker-setup's stand-in: Debian's own python3
TIMEOUT = 1800  # seconds: two installs from PyPI and the suite on 2 shared cores

pytestmark = pytest.mark.slow

#: Runs as root in the container: unpack the archive (stdin) for a new user, then act as them.
SCRIPT = r"""
set -euo pipefail
useradd --create-home --shell /bin/bash newcomer
mkdir /home/newcomer/imapd
tar -x -C /home/newcomer/imapd
chown -R newcomer: /home/newcomer/imapd
exec runuser -u newcomer -- bash -euo pipefail -c '
cd ~/imapd
# A .venv from another machine, as the one once committed: links into a pyenv absent here.
mkdir -p .venv/bin
ln -s /root/.pyenv/versions/3.11.7/bin/python3 .venv/bin/python3
ln -s python3 .venv/bin/python
echo "== scripts/serve"
scripts/serve >serve.log 2>&1 &
serve=$!
python3 - "$serve" <<"EOF"
import imaplib, os, socket, sys, time
pid = int(sys.argv[1])
deadline = time.monotonic() + 900
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("scripts/serve exited before greeting")
    try:
        with socket.create_connection(("127.0.0.1", 1143), timeout=5) as sock:
            greeting = sock.makefile("rb").readline().decode()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("no greeting on 127.0.0.1:1143 within 900 s")
        time.sleep(0.5)
print("GREETING", greeting.strip())
assert greeting.startswith("* OK"), greeting
client = imaplib.IMAP4("127.0.0.1", 1143)
print("LOGIN", client.login("demo", "demo")[0])
client.logout()
EOF
kill -TERM "$serve"
wait "$serve" && echo "SERVE EXIT 0" || { echo "SERVE EXIT $?"; cat serve.log; exit 1; }
cat serve.log
echo "== scripts/test"
scripts/test -q -p no:cacheprovider -m "not slow" tests/protocol tests/transcripts tests/store \
  tests/e2e/test_imapclient.py tests/e2e/test_scripts.py
'
"""


def _git_archive() -> bytes:
    if not (ROOT / ".git").exists():
        if in_ci():
            pytest.fail("CI=true but the tests do not run from a git checkout")
        pytest.skip("not a git checkout (e.g. inside the fresh-machine container itself)")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        unavailable(f"git archive failed: {archive.stderr.decode(errors='replace')[:200]}")
    return archive.stdout


def test_readme_commands_on_a_fresh_debian(capsys: pytest.CaptureFixture[str]) -> None:
    archive = _git_archive()
    require_engine()
    # Minutes by design (TIMEOUT bounds it): no thread dump at pytest's faulthandler_timeout.
    faulthandler.cancel_dump_traceback_later()
    require_image(BASE_IMAGE)
    try:
        result = subprocess.run(
            ["docker", "run", "--rm", "-i", BASE_IMAGE, "bash", "-c", SCRIPT],
            input=archive,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        last = (exc.stdout or b"").decode(errors="replace").splitlines()[-60:]
        pytest.fail(f"fresh-machine run took over {TIMEOUT} s:\n" + "\n".join(last))
    out = (result.stdout + result.stderr).decode(errors="replace")
    print(out)  # noqa: T201 - shown by pytest when the test fails (and with -s)
    tail = "\n".join(out.splitlines()[-60:])
    assert result.returncode == 0, f"exit {result.returncode}:\n{tail}"
    assert re.search(r"^GREETING \* OK", out, re.M), tail
    assert re.search(r"^LOGIN OK$", out, re.M), tail
    assert "SERVE EXIT 0" in out, tail
    assert "does not run here (made elsewhere or half-made); recreating it" in out, tail
    summary = re.findall(r"(\d+) passed", out)
    assert summary and int(summary[-1]) > 0, tail
    assert not re.search(r"\d+ failed", out), tail
    with capsys.disabled():  # in CI's log: the container run happened, and what it saw
        shown = [
            line
            for line in out.splitlines()
            if line.startswith(("GREETING", "LOGIN", "SERVE EXIT", "imapd: serving"))
            or re.search(r"\d+ passed", line)
        ]
        seen = " | ".join(line[:100] for line in shown)
        print(f"\nfresh Debian container ({BASE_IMAGE}): {seen}")  # noqa: T201
