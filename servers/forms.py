"""The deploy form. Its values end up as arguments of git on the customer's server, so
they are held to a strict shape: nothing git could read as an option, a local path or a
transport helper (`ext::`, `file://`), and nothing with a newline or a control
character."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings

MAX_URL_LENGTH = 500
MAX_BRANCH_LENGTH = 255
MAX_SUBDIRECTORY_LENGTH = 255

URL_HELP = "https://host/owner/repo.git, ssh://git@host/owner/repo.git or git@host:owner/repo.git"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # never starts with "-"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
_USER = r"[A-Za-z0-9._~%!$&'()*+,;=-]+"  # RFC 3986 userinfo characters, no ":" or "@"
_PATH = r"[A-Za-z0-9._~%!$&'()*+,;=:@/-]*"
_HTTPS_URL = re.compile(rf"https://(?:{_USER}(?::{_USER})?@)?{_HOST}(?::\d{{1,5}})?/{_PATH}")
_SSH_URL = re.compile(rf"ssh://(?:{_USER}(?::{_USER})?@)?{_HOST}(?::\d{{1,5}})?/{_PATH}")
# scp-like: user@host:path, where the path must not start with "/" or "-".
_SCP_URL = re.compile(rf"{_USER}@{_HOST}:(?![/-]){_PATH}")
_FILE_URL = re.compile(rf"file:///{_PATH}")

_SUBDIRECTORY_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def git_url_problem(url: str) -> str | None:
    """Why `url` is not a git URL we deploy from, or None when it is one."""
    if not url:
        return "Enter the repository's URL."
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is too long (at most {MAX_URL_LENGTH} characters)."
    if url.startswith("-"):
        return "The URL cannot start with '-'."
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "The URL cannot contain spaces, line breaks or control characters."
    if "::" in url.split("/", 1)[0] or url.lower().startswith("ext:"):
        return "Transport helpers such as ext:: are not allowed."
    if settings.DEPLOY_ALLOW_LOCAL_GIT_URLS and _FILE_URL.fullmatch(url):
        return None
    if url.lower().startswith("file:") or url.startswith(("/", ".", "~")):
        return "Local paths and file:// URLs are not allowed: use the repository's URL."
    if url.lower().startswith("http://"):
        return "Use https://: plain http:// would send your code (and any token) unencrypted."
    if _HTTPS_URL.fullmatch(url) or _SSH_URL.fullmatch(url) or _SCP_URL.fullmatch(url):
        # A host starting with "-" cannot match _HOST, so ssh never sees it as an option.
        return None
    return f"Use a git URL such as {URL_HELP}."


def branch_problem(branch: str) -> str | None:
    """Why `branch` is not a branch name git accepts (`git check-ref-format --branch`), or
    None. The rules, in git's own words, from git-check-ref-format(1)."""
    if not branch:
        return "Enter a branch."
    if len(branch) > MAX_BRANCH_LENGTH:
        return f"The branch name is too long (at most {MAX_BRANCH_LENGTH} characters)."
    if branch.startswith("-"):
        return "A branch name cannot start with '-'."
    if any(ord(ch) < 32 or ord(ch) == 127 or ch in " ~^:?*[\\" for ch in branch):
        return "A branch name cannot contain spaces, control characters or any of ~ ^ : ? * [ \\."
    if ".." in branch or "@{" in branch or "//" in branch or branch == "@":
        return "A branch name cannot contain '..', '@{' or '//', or be '@'."
    if branch.startswith("/") or branch.endswith(("/", ".", ".lock")):
        return "A branch name cannot start with '/' or end with '/', '.' or '.lock'."
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return "No part of a branch name may start with '.' or end with '.lock'."
    return None


def subdirectory_problem(path: str) -> str | None:
    """Why `path` is not a directory inside the repository, or None. Empty is the root."""
    if not path:
        return None
    if len(path) > MAX_SUBDIRECTORY_LENGTH:
        return f"The directory is too long (at most {MAX_SUBDIRECTORY_LENGTH} characters)."
    parts = path.strip("/").split("/")
    if path.startswith("/") or not all(_SUBDIRECTORY_PART.fullmatch(part) for part in parts):
        return (
            "Give a directory inside the repository, such as app or services/web: letters, "
            "digits, '.', '_' and '-', not starting with '.' or '-'."
        )
    return None


class DeploymentForm(forms.Form):
    # No max_length on the fields: the checks below give the length limit in words.
    git_url = forms.CharField(
        label="Git repository URL",
        strip=False,
        help_text=(
            f"{URL_HELP}. For a private repository over HTTPS, put an access token in the URL "
            "(https://x-access-token:TOKEN@github.com/owner/repo.git): it is stored "
            "encrypted and never shown."
        ),
        widget=forms.TextInput(
            attrs={"placeholder": "https://github.com/owner/repo.git", "spellcheck": "false"}
        ),
    )
    branch = forms.CharField(
        label="Branch",
        initial="main",
        strip=False,
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    subdirectory = forms.CharField(
        label="Directory (optional)",
        required=False,
        strip=False,
        help_text="Where the app is inside the repository, when it is not at the top.",
        widget=forms.TextInput(attrs={"placeholder": "services/web", "spellcheck": "false"}),
    )

    def clean_git_url(self):
        return _checked(self.cleaned_data["git_url"].strip(" "), git_url_problem)

    def clean_branch(self):
        return _checked(self.cleaned_data["branch"].strip(" "), branch_problem)

    def clean_subdirectory(self):
        return _checked(self.cleaned_data["subdirectory"].strip(" "), subdirectory_problem).strip(
            "/"
        )


def _checked(value: str, problem) -> str:
    message = problem(value)
    if message:
        raise forms.ValidationError(message)
    return value


# The service decides what a valid name is; the form only bounds what reaches it.
MAX_INPUT_LENGTH = 1000


class DomainForm(forms.Form):
    name = forms.CharField(
        label="Domain name",
        max_length=MAX_INPUT_LENGTH,
        help_text="The name your visitors type, such as www.example.com.",
        widget=forms.TextInput(
            attrs={
                "placeholder": "www.example.com",
                "autocomplete": "off",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )
