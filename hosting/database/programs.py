"""Where PostgreSQL's programs are: the server's (initdb, pg_ctl) for the local cluster and
the client's (pg_dump, pg_restore, psql) for backups and restores.

Only the standard library is used: the local cluster looks its programs up before Django
is configured.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

# Debian and Ubuntu install each major version's programs here, off PATH.
SERVER_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _version_key(directory: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); "9.6" -> (9, 6): numeric, so 15 beats 9.6.
    version = Path(directory).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find(name: str) -> str | None:
    """The path of a PostgreSQL program: from PATH (on Debian that is pg_wrapper, which
    picks the right version), else the newest /usr/lib/postgresql/<version>/bin that has
    it. None when there is none."""
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob(SERVER_BIN_GLOB), key=_version_key, reverse=True):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
