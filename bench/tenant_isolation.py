"""What row-level security costs under load: the dashboard and the server page served by
gunicorn with the production settings (DEBUG off, the pool on), the tenant scope set
(TENANT_ISOLATION on) and unset (off), side by side in one run on the same seeded data.
Windows of load alternate between the two servers, so drift on the machine hits both.

    python -m bench.tenant_isolation [--customers 1000] [--sessions 32] [--seconds 5]
                                     [--rounds 3]

It uses its own database, `hosting_bench` on the local cluster (BENCH_DATABASE_URL to
use another), made and seeded on the first run. Prints one line per page and exits 1
when a page keeps less than 95% of its throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET = 0.95
PORTS = {True: 8771, False: 8772}  # TENANT_ISOLATION -> port


def bench_database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    sys.path.insert(0, str(PROJECT))
    from hosting.database import localdb

    localdb.local_cluster().start("hosting_bench")
    return localdb.local_cluster().url("hosting_bench")


def environment(url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SETTINGS_MODULE": "hosting.settings",
        **extra,
    }


def manage(url: str, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=PROJECT, env=environment(url), check=True)


SEED = """
import json, sys, django
django.setup()
from bench.seed_tenants import customers_seed
print(json.dumps(customers_seed(int(sys.argv[1]), int(sys.argv[2]))))
"""


def seed(url: str, customers: int, sessions: int) -> list[dict]:
    """The customers (made once) and `sessions` logged-in sessions of different ones."""
    result = subprocess.run(
        [PYTHON, "-c", SEED, str(customers), str(sessions)],
        cwd=PROJECT,
        env=environment(url),
        check=True,
        capture_output=True,
        text=True,
    )
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def gunicorn(url: str, isolation: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-c", "python:hosting.gunicorn_conf", "hosting.wsgi"]
        + ["--bind", f"127.0.0.1:{PORTS[isolation]}", "--access-logfile", "/dev/null"],
        cwd=PROJECT,
        env=environment(url, TENANT_ISOLATION="on" if isolation else "off"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn on port {port} did not answer /healthz")


async def load(port: int, sessions: list[dict], path_of, seconds: float) -> tuple[int, int]:
    """Each session requests its page over and over for `seconds`: (answered, failed)."""
    answered = failed = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(sessions))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        async def one(session):
            nonlocal answered, failed
            cookies = {"sessionid": session["cookie"]}
            path = path_of(session)
            while time.monotonic() < deadline:
                response = await client.get(path, cookies=cookies)
                if response.status_code == 200:
                    answered += 1
                else:
                    failed += 1

        await asyncio.gather(*(one(session) for session in sessions))
    return answered, failed


PAGES = {
    "dashboard": lambda session: "/dashboard/",
    "server page": lambda session: f"/servers/{session['server']}/",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    url = bench_database_url()
    manage(url, "migrate", "--noinput", "-v0")
    manage(url, "collectstatic", "--noinput", "-v0")
    sessions = seed(url, options.customers, options.sessions)
    servers = {isolation: gunicorn(url, isolation) for isolation in PORTS}
    failures = []
    try:
        for port in PORTS.values():
            wait_until_up(port)
        print(
            f"{options.customers} customers, {len(sessions)} sessions of different ones, "
            f"{options.rounds} x {options.seconds:g} s per side, alternating"
        )
        for page, path_of in PAGES.items():
            asyncio.run(load(PORTS[True], sessions, path_of, 1.0))  # warm both up
            asyncio.run(load(PORTS[False], sessions, path_of, 1.0))
            rates = {True: [], False: []}
            errors = 0
            for _ in range(options.rounds):
                for isolation, port in PORTS.items():
                    answered, failed = asyncio.run(load(port, sessions, path_of, options.seconds))
                    rates[isolation].append(answered / options.seconds)
                    errors += failed
            # Each round's two windows are neighbours in time: their ratio is free of the
            # machine's drift, and the median of the rounds' ratios of a noisy window.
            shares = sorted(a / b for a, b in zip(rates[True], rates[False], strict=True))
            share = statistics.median(shares)
            print(
                f"{page:<12} {statistics.median(rates[True]):7.1f} req/s with the scope, "
                f"{statistics.median(rates[False]):7.1f} without: {share:.1%} "
                f"(rounds {shares[0]:.0%}-{shares[-1]:.0%}; target {TARGET:.0%}); "
                f"non-200 answers: {errors}"
            )
            if share < TARGET or errors:
                failures.append(page)
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=10)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
