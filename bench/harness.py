"""What the benchmarks share: a database of their own on the local cluster, gunicorn as
production runs it (the Procfile's config, DEBUG off, the pool on), and the load
generator: an httpx asyncio client whose sessions each request their page in a loop,
timing every answer."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The framework floor's path (bench.urls).
FLOOR = "/bench/floor/"


def bench_database_url(name: str = "hosting_bench") -> str:
    """BENCH_DATABASE_URL, or database `name` on the local cluster (made when missing)."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    sys.path.insert(0, str(PROJECT))
    from hosting.database import localdb

    localdb.local_cluster().start(name)
    return localdb.local_cluster().url(name)


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


def django_json(url: str, code: str, *args: str, **env: str):
    """Runs `code` in a Django process on database `url`; its last line of output, JSON."""
    result = subprocess.run(
        [PYTHON, "-c", "import django; django.setup()\n" + code, *args],
        cwd=PROJECT,
        env=environment(url, **env),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:  # its traceback, not just the code it ran
        raise RuntimeError(f"a Django process failed:\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def gunicorn(url: str, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-c", "python:hosting.gunicorn_conf", "hosting.wsgi"]
        + ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"],
        cwd=PROJECT,
        env=environment(url, **env),
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


@dataclass
class Window:
    """What one window of load saw."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # of 200 answers, in seconds
    failed: int = 0  # answers other than 200

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, share: float) -> float:
        """In milliseconds; nearest-rank, as wrk and locust report."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


async def _load(port: int, sessions: list[dict], path_of, seconds: float) -> Window:
    window = Window(seconds)
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(sessions))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        async def one(session):
            cookies = {"sessionid": session["cookie"]}
            path = path_of(session)
            while time.monotonic() < deadline:
                start = time.perf_counter()
                response = await client.get(path, cookies=cookies)
                if response.status_code == 200:
                    window.latencies.append(time.perf_counter() - start)
                else:
                    window.failed += 1

        await asyncio.gather(*(one(session) for session in sessions))
    return window


def load(port: int, sessions: list[dict], path_of, seconds: float) -> Window:
    """Each session (its own customer, its own cookie) requests `path_of(session)` over
    and over for `seconds`, one request at a time: len(sessions) concurrent clients."""
    return asyncio.run(_load(port, sessions, path_of, seconds))
