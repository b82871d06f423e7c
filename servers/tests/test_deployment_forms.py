"""The deploy form: git URLs, branches and directories that reach git on the customer's
server. Hostile input is refused with a message and creates nothing; and credentials in a
URL or echoed in a log line never reach the database or the page."""

import subprocess

import pytest
from django.db import connection

from servers.forms import DeploymentForm
from servers.models import Deployment
from servers.redaction import redact, url_credentials
from servers.tests.factories import ServerFactory

GOOD_URLS = [
    "https://github.com/owner/repo.git",
    "https://github.com/owner/repo",
    "https://gitlab.example.com:8443/group/sub/repo.git",
    "https://x-access-token:ghs_abc123@github.com/owner/repo.git",
    "ssh://git@github.com/owner/repo.git",
    "ssh://git@git.example.com:2222/owner/repo.git",
    "git@github.com:owner/repo.git",
    "deploy@git.example.com:repos/app.git",
]

HOSTILE_URLS = {
    "--upload-pack=touch /tmp/pwned": "cannot start with '-'",
    "-oProxyCommand=sh": "cannot start with '-'",
    "ssh://-oProxyCommand=touch%20pwned/x": "Use a git URL",
    "git@-oProxyCommand=sh:repo": "Use a git URL",
    "file:///etc": "Local paths and file:// URLs are not allowed",
    "FILE:///etc/passwd": "Local paths and file:// URLs are not allowed",
    "/srv/other-customer/repo.git": "Local paths and file:// URLs are not allowed",
    "./repo": "Local paths and file:// URLs are not allowed",
    "~/repo": "Local paths and file:// URLs are not allowed",
    "ext::sh -c touch% /tmp/pwned": "spaces, line breaks or control characters",
    "ext::sh": "Transport helpers such as ext:: are not allowed",
    "fd::17": "Transport helpers such as ext:: are not allowed",
    "https://github.com/a/b.git\n--upload-pack=x": "spaces, line breaks or control characters",
    "https://github.com/a/b.git\r": "spaces, line breaks or control characters",
    "https://github.com/a/b\x00.git": "Null characters are not allowed",
    "http://github.com/owner/repo.git": "Use https://",
    "ftp://example.com/repo.git": "Use a git URL",
    "github.com/owner/repo": "Use a git URL",
    "https:///no-host": "Use a git URL",
    "https://" + "a" * 10_000 + ".com/x": "too long",
    "": "This field is required",
}

GOOD_BRANCHES = ["main", "release/2.0", "feature/add-search", "v1.2.3", "fix_bug-12"]

HOSTILE_BRANCHES = {
    "--upload-pack=touch /tmp/pwned": "cannot start with '-'",
    "-b": "cannot start with '-'",
    "main\n--force": "spaces, control characters",
    "main branch": "spaces, control characters",
    "a..b": "cannot contain '..'",
    "a@{1}": "'@{'",
    "@": "be '@'",
    "refs//heads": "'//'",
    "main.lock": "'.lock'",
    "feature/.hidden": "start with '.'",
    "/main": "cannot start with '/'",
    "main/": "end with '/'",
    "ma~in": "~",
    "ma:in": ":",
    "x" * 10_000: "too long",
}

HOSTILE_DIRECTORIES = ["../other", "/etc", "a/../../b", "-rf", ".git", "a b", "a\nb", "x" * 10_000]


def form(**values):
    data = {"git_url": GOOD_URLS[0], "branch": "main", "subdirectory": "", **values}
    return DeploymentForm(data)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_accepts_the_git_url_forms_we_deploy_from(url):
    deploy_form = form(git_url=url)
    assert deploy_form.is_valid(), deploy_form.errors
    assert deploy_form.cleaned_data["git_url"] == url


@pytest.mark.parametrize("url,message", HOSTILE_URLS.items())
def test_refuses_hostile_git_urls_with_a_message(url, message):
    deploy_form = form(git_url=url)
    assert not deploy_form.is_valid()
    assert message in " ".join(deploy_form.errors["git_url"])


@pytest.mark.parametrize("branch", GOOD_BRANCHES)
def test_accepts_branch_names_git_accepts(branch):
    assert form(branch=branch).is_valid()
    # Our rules and git's own agree on these.
    assert subprocess.run(["git", "check-ref-format", "--branch", branch]).returncode == 0


@pytest.mark.parametrize("branch,message", HOSTILE_BRANCHES.items())
def test_refuses_branch_names_git_refuses_or_that_read_as_options(branch, message):
    deploy_form = form(branch=branch)
    assert not deploy_form.is_valid()
    assert message in " ".join(deploy_form.errors["branch"])


@pytest.mark.parametrize("directory", HOSTILE_DIRECTORIES)
def test_refuses_directories_outside_the_repository(directory):
    deploy_form = form(subdirectory=directory)
    assert not deploy_form.is_valid()
    assert deploy_form.errors["subdirectory"]


def test_a_directory_is_optional_and_loses_its_slashes():
    assert form(subdirectory="").is_valid()
    deploy_form = form(subdirectory="services/web/")
    assert deploy_form.is_valid()
    assert deploy_form.cleaned_data["subdirectory"] == "services/web"


def test_file_urls_only_when_a_test_setting_allows_them(settings):
    assert not form(git_url="file:///tmp/repo.git").is_valid()
    settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = True
    assert form(git_url="file:///tmp/repo.git").is_valid()
    # Still no option injection or helpers.
    assert not form(git_url="--upload-pack=x").is_valid()
    assert not form(git_url="ext::sh").is_valid()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value",
    [("git_url", url) for url in list(HOSTILE_URLS)[:8]]
    + [("branch", branch) for branch in list(HOSTILE_BRANCHES)[:4]]
    + [("subdirectory", "../other")],
)
def test_a_hostile_post_creates_nothing_and_says_why(client, field, value):
    server = ServerFactory()
    client.force_login(server.user)
    data = {"git_url": GOOD_URLS[0], "branch": "main", "subdirectory": "", field: value}
    response = client.post(f"/servers/{server.uuid}/deployments/", data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert Deployment.objects.count() == 0


# -- redaction ---------------------------------------------------------------------------

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.mark.parametrize(
    "line,secret",
    [
        (f"fatal: unable to access 'https://x-access-token:{TOKEN}@github.com/o/r.git/'", TOKEN),
        ("Cloning https://oauth2:glpat-abcdefghijklmnopqrstu@gitlab.com/o/r", "glpat-abcdefghij"),
        ("remote: x-access-token:s3cr3t-value denied", "s3cr3t-value"),
        ("header Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        (f"token {TOKEN} in a sentence", TOKEN),
        ("https://user:hunter2@example.com/repo.git", "hunter2"),
        ("https://plaintoken123@example.com/repo.git", "plaintoken123"),
    ],
)
def test_redaction_removes_credentials_from_log_lines(line, secret):
    assert secret not in redact(line)
    assert "***" in redact(line)


def test_redaction_keeps_ssh_login_names_and_ordinary_text():
    for line in ["ssh://git@github.com/o/r.git", "git@github.com:o/r.git", "Step 3/7: RUN make"]:
        assert redact(line) == line


def test_a_known_secret_is_masked_wherever_it_appears():
    assert redact("echo my-secret-word twice: my-secret-word", secrets=("my-secret-word",)) == (
        "echo *** twice: ***"
    )


def test_url_credentials():
    assert url_credentials(f"https://x-access-token:{TOKEN}@github.com/o/r") == (
        f"x-access-token:{TOKEN}"
    )
    assert url_credentials("https://github.com/o/r") == ""
    assert url_credentials("ssh://git@github.com/o/r") == ""
    assert url_credentials("git@github.com:o/r") == ""


@pytest.mark.django_db
def test_a_token_in_the_url_never_reaches_a_readable_column_or_the_page(client):
    server = ServerFactory()
    client.force_login(server.user)
    url = f"https://x-access-token:{TOKEN}@github.com/owner/private.git"
    response = client.post(
        f"/servers/{server.uuid}/deployments/", {"git_url": url, "branch": "main"}
    )
    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert deployment.git_url == "https://***@github.com/owner/private.git"
    assert deployment.git_url_secret == url  # decrypted by the field for the job only
    with connection.cursor() as cursor:  # what a database dump would show
        cursor.execute("SELECT git_url, git_url_secret FROM servers_deployment")
        columns = cursor.fetchone()
    assert all(TOKEN not in column for column in columns), columns
    for path in [response["Location"], f"/servers/{server.uuid}/deployments/", "/dashboard/"]:
        assert TOKEN not in client.get(path).content.decode()
