"""The deployment script a runner runs: deploy.sh after a preamble that sets its arguments
(shell-quoted, so no value is ever read as code) and git's environment."""

from __future__ import annotations

import shlex
from pathlib import Path

from django.conf import settings

DEPLOY_SH = Path(__file__).with_name("deploy.sh")
COMMIT_MARKER = "::commit "
# No prompt can be answered (it would hang until the timeout); a host key seen for the
# first time is accepted, since the server has no way to know the customer's git host.
GIT_SSH_COMMAND = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"


def deploy_script(
    *, git_url: str, branch: str, subdirectory: str, app_dir: str, build: bool
) -> str:
    """The whole script: fetch `branch` of `git_url` into `app_dir`, check it out, then in
    `subdirectory` build and start the app with docker (or skip that when `build` is false).
    Prints `::commit <40-hex sha>` once the commit is checked out."""
    # git's own allow-list: no ext::, no local paths on a real server.
    protocols = "https:ssh" + (":file" if settings.DEPLOY_ALLOW_LOCAL_GIT_URLS else "")
    arguments = (git_url, branch, subdirectory, app_dir, "yes" if build else "no")
    preamble = "\n".join(
        [
            "set -- " + " ".join(shlex.quote(value) for value in arguments),
            "export GIT_TERMINAL_PROMPT=0",
            f"export GIT_ALLOW_PROTOCOL={protocols}",
            f"export GIT_SSH_COMMAND={shlex.quote(GIT_SSH_COMMAND)}",
        ]
    )
    return preamble + "\n" + DEPLOY_SH.read_text(encoding="utf-8")
