"""A project-local PostgreSQL cluster for development and tests.

Used by `make run` and `make test` when DATABASE_URL is unset: the cluster is created on
first use, listens only on a Unix socket (no TCP port to collide with), and runs as the
`postgres` user when we are root, because PostgreSQL refuses to run as root.

The app connects as `hosting`, a role that owns its databases and may create more (the
tests' databases) but is no superuser: a superuser would bypass row-level security
(hosting.tenant), so the app's tenant isolation holds here exactly as in production.
Administration (creating the role and databases) is done as the superuser `postgres`.

    python -m hosting.database.localdb start|stop|status|url

Only the standard library is used, so this runs before Django is configured.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from hosting.database import programs

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
DB_NAME = "hosting"
DB_USER = "hosting"  # the app's role: LOGIN CREATEDB, nothing more
SUPERUSER = "postgres"
# A Unix socket path must fit in 107 bytes; leave room for "/.s.PGSQL.5432".
MAX_SOCKET_DIR = 90


def _is_root() -> bool:
    return os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """True when every ancestor lets other users through, so `postgres` can reach it."""
    return all(os.stat(part).st_mode & stat.S_IXOTH for part in [path, *path.parents])


def cluster_dir() -> Path:
    local = PROJECT_DIR / ".pg"
    too_long = len(str(local / "data")) > MAX_SOCKET_DIR
    if too_long or (_is_root() and not _reachable_by_others(PROJECT_DIR)):
        digest = hashlib.sha256(str(PROJECT_DIR).encode()).hexdigest()[:12]
        # The cluster directory is made 0700 and owned by postgres, so others stay out.
        return Path("/var/tmp") / f"hosting-pg-{digest}"  # noqa: S108
    return local


def data_dir() -> Path:
    return cluster_dir() / "data"


def url() -> str:
    """The DATABASE_URL of the local cluster: an absolute path names the socket directory."""
    return local_cluster().url()


def _install_hint() -> str:
    if Path("/etc/debian_version").exists():
        return "sudo apt-get install -y postgresql"
    if Path("/etc/fedora-release").exists() or Path("/etc/redhat-release").exists():
        return "sudo dnf install -y postgresql-server"
    if sys.platform == "darwin":
        return "brew install postgresql@15"
    return "install the PostgreSQL 15+ server binaries (initdb, pg_ctl) with your package manager"


def ensure_binaries() -> None:
    if programs.find("initdb") and programs.find("pg_ctl"):
        return
    if _is_root() and Path("/etc/debian_version").exists():
        print("PostgreSQL server binaries missing: installing them with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        if programs.find("initdb") and programs.find("pg_ctl"):
            return
    sys.exit(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found. Install them:\n  {_install_hint()}"
    )


def _as_owner(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server binary as `postgres` when root, else as ourselves."""
    if _is_root():
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, **kwargs)


class Cluster:
    """A PostgreSQL cluster in `directory` (its data in `directory/data`, which is also
    its socket directory), run as `postgres` when we are root. The project's own is
    `Cluster(cluster_dir())`; a test can own another, to stop and start it at will."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.data = directory / "data"

    def url(self, name: str = DB_NAME, *, user: str = DB_USER) -> str:
        return f"postgresql://{user}@/{self.data}/{name}"

    def psql(self, sql: str) -> str:
        """Run `sql` as the superuser, in the `postgres` database."""
        result = subprocess.run(
            [programs.find("psql") or "psql", "-h", str(self.data), "-U", SUPERUSER]
            + ["-d", "postgres", "-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def initdb(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.directory, "postgres", "postgres")
        self.directory.chmod(0o700)
        print(f"Creating a local PostgreSQL cluster in {self.directory}", flush=True)
        _as_owner(
            [
                programs.find("initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# hosting: local development cluster\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.data}'\n"
                "unix_socket_permissions = 0700\n"
                "max_connections = 100\n"
                # A development cluster: losing the last few commits on a crash is fine.
                "synchronous_commit = off\n"
            )

    def is_running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        pg_ctl = programs.find("pg_ctl")
        status = _as_owner([pg_ctl, "-D", str(self.data), "status"], capture_output=True)
        return status.returncode == 0

    def start(self, database: str = DB_NAME) -> None:
        """Create the cluster if needed, start it, and create `database` if missing."""
        ensure_binaries()
        if not (self.data / "PG_VERSION").exists():
            self.initdb()
        if not self.is_running():
            log = self.directory / "postgres.log"
            _as_owner(
                [programs.find("pg_ctl"), "-D", str(self.data), "-l", str(log)]
                + ["-w", "-t", "60", "start"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self.app_role_ensure()
        owner = f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'"  # noqa: S608
        current = self.psql(owner)
        if current and current != DB_USER:
            # Made before the app had its own role: kept under another name, not migrated.
            kept = f"{database}_before_app_role"
            self.psql(f'ALTER DATABASE "{database}" RENAME TO "{kept}"')
            print(f"The old local database {database} is kept as {kept}; making a new one.")
            current = ""
        if not current:
            self.psql(f'CREATE DATABASE "{database}" OWNER "{DB_USER}"')

    def app_role_ensure(self) -> None:
        """The app's role, and the tests' databases a `postgres` connection made before it
        existed handed to it (so the tests can drop and make them again)."""
        if self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_USER}'") != "1":  # noqa: S608
            self.psql(f'CREATE ROLE "{DB_USER}" LOGIN CREATEDB')
        stale = self.psql(
            "SELECT string_agg(quote_ident(datname), ' ') FROM pg_database "  # noqa: S608
            f"WHERE datname LIKE 'test\\_%' AND pg_get_userbyid(datdba) <> '{DB_USER}'"
        )
        for name in stale.split():
            self.psql(f'ALTER DATABASE {name} OWNER TO "{DB_USER}"')

    def stop(self) -> bool:
        """Stop it (fast: sessions are disconnected); False when it was not running."""
        if not self.is_running():
            return False
        _as_owner(
            [programs.find("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return True


def local_cluster() -> Cluster:
    return Cluster(cluster_dir())


def is_running() -> bool:
    return local_cluster().is_running()


def start() -> None:
    if configured("DATABASE_URL") or configured("DB_HOST"):
        print("DATABASE_URL or DB_HOST is set: using it, no local PostgreSQL started.")
        return
    local_cluster().start()
    print(f"Local PostgreSQL is up: {url()}")


def stop() -> None:
    if local_cluster().stop():
        print("Local PostgreSQL stopped.")
    else:
        print("Local PostgreSQL is not running.")


def configured(name: str) -> bool:
    """Whether `name` is given a value in the environment or in the .env file (ENV_FILE)
    that the settings read."""
    if os.environ.get(name):
        return True
    env_file = Path(os.environ.get("ENV_FILE") or PROJECT_DIR / ".env")
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.strip().startswith(f"{name}=") and line.split("=", 1)[1].strip():
                return True
    return False


def main(argv: list[str]) -> None:
    commands = {
        "start": start,
        "stop": stop,
        "url": lambda: print(url()),
        "status": lambda: print("running" if is_running() else "stopped"),
    }
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(f"usage: python -m hosting.database.localdb {{{'|'.join(commands)}}}")
    commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
