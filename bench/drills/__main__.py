"""Runs the failure drills and prints their figures:

    python -m bench.drills [--short] [--only NAME[,NAME...]]

Each drill runs in a process of its own on a fresh database (`hosting_drills` on the
local cluster, dropped and made again; DRILLS_DATABASE_URL names an empty one to use
instead, for one drill). Writes
bench/results/drills[-short].json and .md; exits 1 when any drill saw a violation.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
RESULTS = PROJECT / "bench" / "results"


def database_url() -> str:
    url = os.environ.get("DRILLS_DATABASE_URL")
    if url:
        return url
    sys.path.insert(0, str(PROJECT))
    from hosting.database import localdb

    cluster = localdb.local_cluster()
    cluster.start()
    cluster.psql('DROP DATABASE IF EXISTS "hosting_drills" WITH (FORCE)')
    cluster.psql(f'CREATE DATABASE "hosting_drills" OWNER "{localdb.DB_USER}"')
    return cluster.url("hosting_drills")


def prepare(url: str) -> None:
    """Points this process (and what it starts) at the drills' database, migrated."""
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="hosting.settings",
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        ALLOWED_HOSTS="testserver,127.0.0.1,localhost",
        EMAIL_URL="memorymail://",
    )
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        # DEBUG is off, as in production, so pages name their files from the manifest.
        subprocess.run([sys.executable, "manage.py", *command], cwd=PROJECT, check=True)
    import django

    django.setup()


def table(rows: list[dict]) -> str:
    lines = ["| drill | result | seconds | figures |", "| --- | --- | ---: | --- |"]
    for row in rows:
        figures = ", ".join(f"{key}: {value}" for key, value in row["figures"].items())
        result = "pass" if not row["violations"] else "FAIL: " + "; ".join(row["violations"])
        lines.append(f"| {row['name']} | {result} | {row['seconds']:.1f} | {figures} |")
    return "\n".join(lines)


def run_one(name: str, short: bool) -> dict:
    """Runs one drill in this process (already prepared): its row for the table."""
    from bench.drills import Outcome, Timer

    module = importlib.import_module(f"bench.drills.{name}")
    print(f"== {module.NAME} ({'short' if short else 'full'})", flush=True)
    with Timer() as timer:
        try:
            outcome = module.run(short=short)
        except Exception:  # a drill that crashes has failed; the others still run
            outcome = Outcome(violations=["crashed: " + traceback.format_exc(limit=-3)])
    for key, value in outcome.figures.items():
        print(f"   {key}: {value}")
    for violation in outcome.violations:
        print(f"   VIOLATION {violation}")
    print(f"   {'ok' if not outcome.violations else 'FAILED'} in {timer.seconds:.1f} s", flush=True)
    return {
        "name": module.NAME,
        "seconds": timer.seconds,
        "figures": outcome.figures,
        "violations": outcome.violations,
    }


def run_apart(name: str, short: bool) -> dict:
    """Runs one drill in a process of its own, so that each starts from a fresh database
    and settings of its own; a process that dies is a failed drill."""
    with tempfile.NamedTemporaryFile(suffix=".json") as row_file:
        command = [sys.executable, "-m", "bench.drills", "--only", name, "--row", row_file.name]
        finished = subprocess.run([*command, *(["--short"] if short else [])], cwd=PROJECT)
        text = Path(row_file.name).read_text()
    if finished.returncode not in (0, 1) or not text:
        return {"name": name, "seconds": 0.0, "figures": {}, "violations": ["process died"]}
    return json.loads(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the quick form make test runs")
    parser.add_argument("--only", default="", help="comma-separated drill modules")
    parser.add_argument("--row", default="", help=argparse.SUPPRESS)  # run_apart's answer
    options = parser.parse_args(argv)

    from bench.drills import DRILLS

    chosen = [name for name in options.only.split(",") if name] or DRILLS
    unknown = set(chosen) - set(DRILLS)
    if unknown:
        parser.error(f"no such drill: {', '.join(sorted(unknown))}")
    if len(chosen) == 1:
        prepare(database_url())
        rows = [run_one(chosen[0], options.short)]
        if options.row:
            Path(options.row).write_text(json.dumps(rows[0], default=str))
    else:
        rows = [run_apart(name, options.short) for name in chosen]

    report = table(rows)
    print()
    print(report)
    if not options.only:
        suffix = "-short" if options.short else ""
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / f"drills{suffix}.json").write_text(
            json.dumps({"at": stamp, "drills": rows}, indent=2, default=str) + "\n"
        )
        (RESULTS / f"drills{suffix}.md").write_text(f"Drills run at {stamp}\n\n{report}\n")
    return 1 if any(row["violations"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
