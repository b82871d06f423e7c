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
import statistics
import sys

from bench.harness import bench_database_url, django_json, gunicorn, load, manage, wait_until_up

TARGET = 0.95
PORTS = {True: 8771, False: 8772}  # TENANT_ISOLATION -> port

SEED = """
import json, sys
from bench.seed_tenants import customers_seed
print(json.dumps(customers_seed(int(sys.argv[1]), int(sys.argv[2]))))
"""


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
    sessions = django_json(url, SEED, str(options.customers), str(options.sessions))
    servers = {
        isolation: gunicorn(url, port, TENANT_ISOLATION="on" if isolation else "off")
        for isolation, port in PORTS.items()
    }
    failures = []
    try:
        for port in PORTS.values():
            wait_until_up(port)
        print(
            f"{options.customers} customers, {len(sessions)} sessions of different ones, "
            f"{options.rounds} x {options.seconds:g} s per side, alternating"
        )
        for page, path_of in PAGES.items():
            load(PORTS[True], sessions, path_of, 1.0)  # warm both up
            load(PORTS[False], sessions, path_of, 1.0)
            rates = {True: [], False: []}
            errors = 0
            for _ in range(options.rounds):
                for isolation, port in PORTS.items():
                    window = load(port, sessions, path_of, options.seconds)
                    rates[isolation].append(window.rate)
                    errors += window.failed
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
