"""The runners against the real thing: SSHRunner talks to a real sshd (the `sshd` fixture)
with the host key pinned, the deploy script fetches from a real git repository, and a
stop is checked by looking for the processes it should have killed."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from servers import credentials
from servers.models import Server
from servers.runners import RunnerError, RunResult, runner_for
from servers.runners.local import LocalRunner
from servers.runners.script import deploy_script
from servers.runners.ssh import HOST_KEY_MISMATCH, KEY_REFUSED, SUDO_REFUSED, SSHRunner
from servers.runners.stream import MAX_LINE_CHARS, LineSplitter, run_async
from servers.tests.factories import ServerFactory


class Output:
    """`on_lines` that keeps every batch with the time it came."""

    def __init__(self):
        self.batches: list[tuple[float, list[str]]] = []

    def __call__(self, lines: list[str]) -> None:
        self.batches.append((time.monotonic(), list(lines)))

    @property
    def lines(self) -> list[str]:
        return [line for _, batch in self.batches for line in batch]

    def commit(self) -> str:
        [sha] = [line.split(" ", 1)[1] for line in self.lines if line.startswith("::commit ")]
        return sha


def never() -> None:
    return None


def alive(pid: int) -> bool:
    """Running, that is: a zombie (nothing here reaps orphans) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def git(*args, cwd=None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


class Repo:
    """A bare repository (the customer's "remote") and a clone root commits and pushes in."""

    def __init__(self, base: Path, give=None):
        self.bare = base / "origin.git"
        self.work = base / "work"
        self.give = give
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=self.work)
        identity = ["-c", "user.name=T", "-c", "user.email=t@example.com"]
        git(*identity, "commit", "--quiet", "--message", message, cwd=self.work)
        # root pushes into a repository the test user owns, which git calls dubious; a
        # local push runs receive-pack with a clean git environment, so -c goes here.
        receive_pack = "git -c safe.directory='*' receive-pack"
        push = ["push", "--quiet", f"--receive-pack={receive_pack}", str(self.bare)]
        git(*push, "HEAD:refs/heads/main", cwd=self.work)
        if self.give:
            self.give(self.bare)
        return git("rev-parse", "HEAD", cwd=self.work)


def password_login(sshd, password: str) -> str:
    """Log in with a password (pinned host key) and say who we are."""

    async def login():
        async with asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.username,
            password=password,
            known_hosts=asyncssh.import_known_hosts(
                f"[{sshd.host}]:{sshd.port} {sshd.host_public_key}\n"
            ),
            client_keys=None,
            agent_path=None,
            config=[],
            preferred_auth="password",
        ) as conn:
            return (await conn.run("id -un", check=True)).stdout.strip()

    # In a thread of its own: the browser tests leave Playwright's loop in this one.
    return run_async(login)


# -- pieces without a server ---------------------------------------------------------------


class TestLineSplitter:
    def test_splits_on_every_line_ending_across_chunks(self):
        splitter = LineSplitter()
        lines = []
        for chunk in [b"one\r", b"\ntwo\rthr", b"ee\n\nfour\r\n", b"\xc3", b"\xa9\xff\nfive"]:
            lines += splitter.feed(chunk)
        lines += splitter.flush()
        assert lines == ["one", "two", "three", "", "four", "é\ufffd", "five"]

    def test_cuts_long_lines_even_without_an_ending(self):
        splitter = LineSplitter()
        lines = splitter.feed(b"x" * 3000) + splitter.feed(b"x" * 3000) + splitter.feed(b"\nok\n")
        lines += splitter.feed(b"y" * 10_000) + splitter.flush()
        assert lines == ["x" * MAX_LINE_CHARS + "…", "ok", "y" * MAX_LINE_CHARS + "…"]


class TestDeployScript:
    def test_preamble_quotes_every_value_and_sets_gits_environment(self, settings):
        settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = False
        url = "https://example.com/it's $(rm -rf ~).git"
        script = deploy_script(
            git_url=url, branch="main", subdirectory="", app_dir="/srv/app", build=True
        )
        first, *rest = script.splitlines()
        assert shlex.split(first) == ["set", "--", url, "main", "", "/srv/app", "yes"]
        assert "export GIT_TERMINAL_PROMPT=0" in rest
        assert "export GIT_ALLOW_PROTOCOL=https:ssh" in rest
        assert (
            "export GIT_SSH_COMMAND='ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new'"
            in rest
        )
        assert script.endswith(Path("servers/runners/deploy.sh").read_text())

    def test_file_urls_only_when_allowed(self, settings):
        settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = True
        script = deploy_script(git_url="u", branch="b", subdirectory="s", app_dir="a", build=False)
        assert "export GIT_ALLOW_PROTOCOL=https:ssh:file" in script.splitlines()
        assert script.splitlines()[0] == "set -- u b s a no"

    def test_passes_shellcheck(self):
        subprocess.run(["shellcheck", "servers/runners/deploy.sh"], check=True)


# -- SSH -----------------------------------------------------------------------------------


def unsaved_server() -> Server:
    """A server the runners can be built from; they read its fields, never the database."""
    return Server(name="web-1", region="nyc3")


@pytest.fixture
def ssh_server(sshd, settings):
    return sshd.point(unsaved_server(), settings)


@pytest.fixture
def ssh_runner(ssh_server) -> SSHRunner:
    runner = runner_for(ssh_server)
    assert isinstance(runner, SSHRunner)
    return runner


@pytest.fixture
def remote_repo(sshd) -> Repo:
    return Repo(sshd.workdir(), give=sshd.give)


class TestSSHRunner:
    @pytest.mark.django_db
    def test_is_built_from_the_server_row_and_settings(self, sshd, settings):
        row = sshd.point(ServerFactory(), settings)
        row = Server.objects.get(pk=row.pk)

        runner = runner_for(row)

        assert isinstance(runner, SSHRunner)
        assert (runner.host, runner.port) == ("127.0.0.1", sshd.port)
        assert runner.username == sshd.username
        assert runner.host_public_key == sshd.host_public_key
        assert runner.client_key_path == sshd.client_key_path
        assert runner.app_dir == settings.DEPLOY_APP_DIR
        assert runner.simulated is False
        output = Output()
        assert runner.run_script("id -un", on_lines=output, should_stop=never).exit_status == 0
        assert output.lines == [sshd.username]

    def test_streams_lines_as_they_arrive_and_returns_the_exit_status(self, ssh_runner):
        output = Output()
        result = ssh_runner.run_script(
            "echo one\nsleep 0.6\necho two\nexit 3\n", on_lines=output, should_stop=never
        )
        assert result == RunResult(3, "")
        assert output.lines == ["one", "two"]
        assert len(output.batches) >= 2
        assert output.batches[-1][0] - output.batches[0][0] >= 0.4

    def test_output_is_merged_split_and_cleaned(self, ssh_runner):
        script = r"""
            echo out; echo err >&2
            printf 'a\r\nb\rc\n'
            printf 'bad \377 byte\n'
            head -c 5000 /dev/zero | tr '\0' x; echo
            [ -e "$0" ] && echo "script on disk" || echo "script gone"
            stat -L -c 'script mode %a' "/proc/$$/fd/255"
            if read -r line; then echo "stdin had: $line"; else echo "stdin empty"; fi
            printf 'no line ending'
        """
        output = Output()
        result = ssh_runner.run_script(script, on_lines=output, should_stop=never)
        assert result == RunResult(0, "")
        assert output.lines == [
            "out",
            "err",
            "a",
            "b",
            "c",
            "bad \ufffd byte",
            "x" * MAX_LINE_CHARS + "…",
            "script gone",
            "script mode 600",
            "stdin empty",
            "no line ending",
        ]

    def test_a_wrong_pinned_host_key_runs_nothing(self, ssh_server, sshd, settings):
        marker = sshd.workdir() / "ran"
        script = f"touch {marker}\n"
        ssh_server.ssh_host_key = credentials.generate_host_key()[1]

        with pytest.raises(RunnerError) as caught:
            runner_for(ssh_server).run_script(script, on_lines=Output(), should_stop=never)

        assert str(caught.value) == HOST_KEY_MISMATCH
        assert not marker.exists()
        # The same script with the right key does create it.
        sshd.point(ssh_server, settings)
        result = runner_for(ssh_server).run_script(script, on_lines=Output(), should_stop=never)
        assert result == RunResult(0, "")
        assert marker.exists()

    def test_a_key_the_server_does_not_know_is_refused(self, ssh_server, settings, tmp_path):
        other = tmp_path / "other_key"
        other.write_text(asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode())
        settings.PANEL_SSH_KEY_FILE = str(other)

        with pytest.raises(RunnerError) as caught:
            runner_for(ssh_server).run_script("true", on_lines=Output(), should_stop=never)
        assert str(caught.value) == KEY_REFUSED

    def test_nothing_listening(self, ssh_server, settings):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            settings.SERVER_SSH_PORT = port = sock.getsockname()[1]
        with pytest.raises(RunnerError) as caught:
            runner_for(ssh_server).run_script("true", on_lines=Output(), should_stop=never)
        assert (
            str(caught.value) == f"Could not connect to 127.0.0.1 port {port}: connection refused."
        )

    def test_stop_kills_the_remote_process_group(self, ssh_runner, sshd):
        pids_file = sshd.workdir() / "pids"
        script = f"""
            sleep 300 &
            echo "$$ $!" > {pids_file}
            echo started
            wait
        """
        asked_at = []

        def should_stop():
            if pids_file.exists() and pids_file.read_text().strip():
                asked_at.append(time.monotonic())
                return "Cancelled by you."
            return None

        output = Output()
        result = ssh_runner.run_script(script, on_lines=output, should_stop=should_stop)
        took = time.monotonic() - asked_at[0]

        assert result == RunResult(None, "Cancelled by you.")
        assert output.lines == ["started"]
        pids = [int(pid) for pid in pids_file.read_text().split()]
        assert len(pids) == 2
        assert not any(alive(pid) for pid in pids)
        assert took < 5

    def test_a_connection_lost_mid_run_is_an_error_after_the_lines_so_far(self, ssh_runner):
        # The script kills the sshd process serving its own session.
        script = 'echo before\nkill -9 "$(ps -o ppid= -p "$PPID")"\nsleep 1\necho after\n'
        output = Output()
        with pytest.raises(RunnerError) as caught:
            ssh_runner.run_script(script, on_lines=output, should_stop=never)
        assert str(caught.value) == (
            "The connection to 127.0.0.1 was lost while the script was running."
        )
        assert output.lines == ["before"]


class TestDeployOverSSH:
    @pytest.fixture(autouse=True)
    def _local_urls(self, settings):
        settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = True

    def deploy(self, runner, repo, app_dir, *, branch="main", subdirectory="", build=True):
        output = Output()
        script = deploy_script(
            git_url=repo.url,
            branch=branch,
            subdirectory=subdirectory,
            app_dir=str(app_dir),
            build=build,
        )
        result = runner.run_script(script, on_lines=output, should_stop=never)
        return result, output

    def test_fetches_checks_out_and_fetches_again(self, ssh_runner, remote_repo, sshd):
        first = remote_repo.commit("First", {"app.py": "v1\n", ".gitignore": ".env\n"})
        app_dir = sshd.workdir() / "app"

        result, output = self.deploy(ssh_runner, remote_repo, app_dir)

        assert result == RunResult(0, "")
        assert output.commit() == first
        assert f"Checked out {first[:7]}: First" in output.lines
        assert output.lines[-1] == (
            "Nothing to build: the repository has no compose file or Dockerfile. "
            f"The code is in {app_dir}."
        )
        assert not any(remote_repo.url in line for line in output.lines)
        assert (app_dir / "app.py").read_text() == "v1\n"

        second = remote_repo.commit("Second", {"app.py": "v2\n"})
        (app_dir / ".env").write_text("SECRET=1\n")  # ignored: kept
        (app_dir / "stray.txt").write_text("left over\n")  # untracked: removed
        sshd.give(app_dir)

        result, output = self.deploy(ssh_runner, remote_repo, app_dir)

        assert result == RunResult(0, "")
        assert output.commit() == second != first
        assert (app_dir / "app.py").read_text() == "v2\n"
        assert (app_dir / ".env").exists()
        assert not (app_dir / "stray.txt").exists()

    def test_without_build_says_it_skipped_it(self, ssh_runner, remote_repo, sshd):
        remote_repo.commit("Init", {"Dockerfile": "FROM scratch\n"})
        result, output = self.deploy(ssh_runner, remote_repo, sshd.workdir() / "a", build=False)
        assert result == RunResult(0, "")
        assert output.lines[-1] == (
            "Build skipped: this server is simulated, so nothing was built or started."
        )

    def test_goes_into_the_subdirectory(self, ssh_runner, remote_repo, sshd):
        remote_repo.commit("Init", {"site/index.html": "hi\n"})
        app_dir = sshd.workdir() / "a"
        result, output = self.deploy(ssh_runner, remote_repo, app_dir, subdirectory="site")
        assert result == RunResult(0, "")
        assert output.lines[-1].endswith(f"The code is in {app_dir}/site.")

    def test_a_missing_subdirectory_fails_saying_so(self, ssh_runner, remote_repo, sshd):
        sha = remote_repo.commit("Init", {"app.py": "v1\n"})
        result, output = self.deploy(
            ssh_runner, remote_repo, sshd.workdir() / "a", subdirectory="web"
        )
        assert result.exit_status not in (0, None)
        assert output.lines[-2:] == [
            f'The directory "web" does not exist in the repository at {sha[:7]}.',
            "==> Failed while entering web (exit status 1).",
        ]

    def test_a_missing_branch_fails_with_gits_message(self, ssh_runner, remote_repo, sshd):
        remote_repo.commit("Init", {"app.py": "v1\n"})
        result, output = self.deploy(ssh_runner, remote_repo, sshd.workdir() / "a", branch="nope")
        assert result.exit_status == 128
        assert "fatal: couldn't find remote ref refs/heads/nope" in output.lines
        assert output.lines[-1] == "==> Failed while fetching nope (exit status 128)."
        assert not any(line.startswith("::commit") for line in output.lines)

    def test_file_urls_are_refused_unless_allowed(self, ssh_runner, remote_repo, sshd, settings):
        settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = False
        remote_repo.commit("Init", {"app.py": "v1\n"})
        result, output = self.deploy(ssh_runner, remote_repo, sshd.workdir() / "a")
        assert result.exit_status != 0
        assert any("transport 'file' not allowed" in line for line in output.lines)


class TestSetPasswordOverSSH:
    def test_the_new_password_logs_in_and_the_old_one_no_longer(self, ssh_runner, sshd):
        with sshd.password_held() as current:
            new = credentials.generate_password()
            ssh_runner.set_password(
                username=sshd.username, current_password=current, new_password=new
            )
            sshd.password = new

            assert password_login(sshd, new) == sshd.username
            with pytest.raises(asyncssh.PermissionDenied):
                password_login(sshd, current)

    def test_a_wrong_current_password_changes_nothing(self, ssh_runner, sshd):
        with sshd.password_held() as current:
            wrong, new = "not-" + current, credentials.generate_password()
            with pytest.raises(RunnerError) as caught:
                ssh_runner.set_password(
                    username=sshd.username, current_password=wrong, new_password=new
                )
            message = str(caught.value)
            assert message == SUDO_REFUSED
            assert wrong not in message and new not in message and current not in message
            assert password_login(sshd, current) == sshd.username


# -- local (simulated servers) ---------------------------------------------------------------


@pytest.fixture
def local_server(settings, tmp_path):
    settings.SERVER_RUNNER = "local"
    settings.DEPLOY_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.DEPLOY_ALLOW_LOCAL_GIT_URLS = True
    return unsaved_server()


@pytest.fixture
def local_runner(local_server) -> LocalRunner:
    runner = runner_for(local_server)
    assert isinstance(runner, LocalRunner)
    return runner


class TestLocalRunner:
    def test_works_in_the_servers_own_workspace(self, local_server, local_runner, tmp_path):
        workspace = tmp_path / "workspaces" / str(local_server.uuid)
        assert local_runner.workspace == workspace
        assert workspace.is_dir()
        assert local_runner.app_dir == str(workspace)
        assert local_runner.simulated is True

        output = Output()
        assert local_runner.run_script("pwd", on_lines=output, should_stop=never).exit_status == 0
        assert output.lines == [str(workspace)]

    def test_deploys_into_the_workspace_without_building(self, local_runner, tmp_path):
        repo = Repo(tmp_path / "repo")
        sha = repo.commit("First", {"app.py": "v1\n", "Dockerfile": "FROM scratch\n"})
        output = Output()
        script = deploy_script(
            git_url=repo.url,
            branch="main",
            subdirectory="",
            app_dir=local_runner.app_dir,
            build=not local_runner.simulated,
        )

        result = local_runner.run_script(script, on_lines=output, should_stop=never)

        assert result == RunResult(0, "")
        assert output.commit() == sha
        assert output.lines[-1] == (
            "Build skipped: this server is simulated, so nothing was built or started."
        )
        assert (local_runner.workspace / "app.py").read_text() == "v1\n"

    def test_values_stay_data(self, local_runner, tmp_path):
        planted = tmp_path / "planted"
        output = Output()
        script = deploy_script(
            git_url=f"file:///nowhere/it's $(touch {planted}).git",
            branch="main",
            subdirectory="",
            app_dir=local_runner.app_dir,
            build=False,
        )
        result = local_runner.run_script(script, on_lines=output, should_stop=never)
        assert result.exit_status == 128
        assert not planted.exists()

    def test_streams_and_returns_the_exit_status(self, local_runner):
        output = Output()
        result = local_runner.run_script(
            "echo one\nsleep 0.6\necho two >&2\nexit 4\n", on_lines=output, should_stop=never
        )
        assert result == RunResult(4, "")
        assert output.lines == ["one", "two"]
        assert len(output.batches) >= 2

    def test_the_panels_environment_is_not_the_scripts(self, local_runner, monkeypatch):
        monkeypatch.setenv("HOSTING_TEST_SECRET", "s3cret")
        output = Output()
        local_runner.run_script(
            'echo "${HOSTING_TEST_SECRET-unset}"; read -r x || echo "stdin empty"',
            on_lines=output,
            should_stop=never,
        )
        assert output.lines == ["unset", "stdin empty"]

    def test_stop_kills_the_process_group(self, local_runner, tmp_path):
        pids_file = tmp_path / "pids"
        script = f'sleep 300 &\necho "$$ $!" > {pids_file}\necho started\nwait\n'

        def should_stop():
            return "Stopped after 15 minutes." if pids_file.exists() else None

        started = time.monotonic()
        output = Output()
        result = local_runner.run_script(script, on_lines=output, should_stop=should_stop)

        assert result == RunResult(None, "Stopped after 15 minutes.")
        pids = [int(pid) for pid in pids_file.read_text().split()]
        assert len(pids) == 2
        assert not any(alive(pid) for pid in pids)
        assert time.monotonic() - started < 5

    @pytest.mark.parametrize(
        ("files", "expected"),
        [
            (
                {"compose.yaml": "services: {}\n", "Dockerfile": "FROM scratch\n"},
                ["docker compose up -d --build --remove-orphans"],
            ),
            (
                {"Dockerfile": "FROM scratch\n"},
                [
                    "docker build -t app:{short} .",
                    "docker rm -f app",
                    "docker run -d --name app --restart unless-stopped -e PORT=8000"
                    " -p 127.0.0.1:8000:8000 app:{short}",
                ],
            ),
        ],
    )
    def test_builds_with_docker_when_asked(
        self, local_runner, tmp_path, monkeypatch, files, expected
    ):
        # A stand-in `docker` that writes down how it was called.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        calls = tmp_path / "docker-calls"
        (bin_dir / "docker").write_text(f'#!/bin/sh\necho "docker $*" >> {calls}\n')
        (bin_dir / "docker").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        repo = Repo(tmp_path / "repo")
        short = repo.commit("First", files)[:7]
        output = Output()
        script = deploy_script(
            git_url=repo.url,
            branch="main",
            subdirectory="",
            app_dir=local_runner.app_dir,
            build=True,
        )

        result = local_runner.run_script(script, on_lines=output, should_stop=never)

        assert result == RunResult(0, "")
        assert calls.read_text().splitlines() == [e.format(short=short) for e in expected]
        assert output.lines[-1] == f"==> Deployed {short}."

    def test_set_password_needs_no_machine(self, local_runner):
        assert (
            local_runner.set_password(username="u", current_password="a", new_password="b") is None
        )
