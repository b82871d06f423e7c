"""Database down: PostgreSQL stopped for 10 s (short form: 6 s) under load, then started
again, with nothing else restarted.

The drill owns a PostgreSQL cluster (hosting.testing.cluster_owned), serves the app from
it with gunicorn as production runs it (DEBUG off, the pool on) and runs the worker
(`manage.py worker`). Clients work at once: customers reading their pages, visitors on
the landing page, and customers buying a server: the checkout, then Stripe's signed
`checkout.session.completed` delivered to the webhook until it is accepted, as Stripe
does. Every answer is counted by status. No 500 may appear: while the database is down
the only error is the 503 "Back in a moment" page. Every page-reading client must be
served 200 again soon after the restart, and every purchase whose checkout went through,
before, during or after the outage, must end with its payment taken and its server
running, with no job left behind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from django.conf import settings
from procrastinate.contrib.django import app

from bench.drills import Outcome
from billing.tests.flow import WEBHOOK, completed_event
from billing.tests.stripe_fakes import signed
from billing.tests.worker import Worker, worker_env
from hosting.database import localdb
from hosting.testing import cluster_owned, gunicorn_serving, run_python, subprocess_env

NAME = "database down"


@dataclass(frozen=True)
class Size:
    readers: int  # logged-in customers reading their pages
    visitors: int  # anonymous, on the landing and pricing pages
    buyers: int  # customers buying a server, one purchase after another
    buyer_accounts: int  # customers without a server, for the buyers to buy as
    before: float  # seconds of load before PostgreSQL stops
    outage: float  # seconds from the stop to the start
    after: float  # seconds of load once every reader has been served again


# The outage outlasts the pool's wait for a connection (DB_POOL_TIMEOUT, 3 s): a shorter
# one is waited out by the requests, and no delivery meets it.
SHORT = Size(readers=3, visitors=1, buyers=2, buyer_accounts=16, before=2, outage=6, after=2)
FULL = Size(readers=6, visitors=2, buyers=3, buyer_accounts=60, before=10, outage=10, after=10)

READER_PAGES = ["/dashboard/", "/billing/", "/support/", "/activity/"]
VISITOR_PAGES = ["/", "/pricing/"]
CHECKOUT = "/billing/checkout/basic/"
# What each kind of request answers while the database is up.
EXPECTED = {"page": {200}, "landing": {200}, "checkout": {200, 303}, "webhook": {200}}
READERS = {"page", "landing"}
MAINTENANCE = "Back in a moment"
THINK_SECONDS = 0.05  # between one client's requests
RETRY_SECONDS = 0.5  # a customer's reload; Stripe's next delivery (much later, in truth)
RECOVERY_LIMIT_SECONDS = 30  # from the restart to every reader served again
WORK_LIMIT_SECONDS = 120  # from the end of the load to every purchase's server running
CLIENT_TIMEOUT = 30.0

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SESSION_IN_URL = re.compile(r"/simulator/checkout/([^/]+)/")

# Run in a Django process on the drill's cluster: logged-in sessions of new customers.
SEED = """
import json, sys
import django
django.setup()
from accounts.models import User
from bench.seed_tenants import login_session

def sessions(prefix, count):
    return [
        login_session(User.objects.create_user(email=f"{prefix}{n}@example.com"))
        for n in range(count)
    ]

print(json.dumps({"readers": sessions("reader", int(sys.argv[1])),
                  "buyers": sessions("buyer", int(sys.argv[2]))}))
"""


@dataclass
class Answer:
    kind: str  # a key of EXPECTED
    sent: float  # monotonic
    seconds: float
    status: int | None  # None: no answer at all (refused, timed out)
    maintenance: bool  # a 503 that is the "Back in a moment" page


@dataclass
class Purchase:
    session_id: str
    phase: str  # when its checkout went through
    delivered: bool = False  # the webhook accepted its event
    refused: int = 0  # deliveries the webhook answered with an error first


@dataclass
class Load:
    """What the clients saw, and when the database went down and came back (monotonic
    times: the stop asked for and done, the start asked for and done)."""

    stopping: float = float("inf")
    down: float = float("inf")
    starting: float = float("inf")
    up: float = float("inf")
    answers: list[Answer] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    held: Purchase | None = None  # the purchase whose event waits for the outage
    # The readers (and visitors) served 200, and when each was first served a request
    # sent after the restart.
    served_once: set[str] = field(default_factory=set)
    served_again: dict[str, float] = field(default_factory=dict)

    def phase(self, answer: Answer) -> str:
        """`before`: answered before the stop began; `after`: sent once the start had
        returned; `during`: in flight at some moment in between."""
        if answer.sent + answer.seconds < self.stopping:
            return "before"
        return "after" if answer.sent >= self.up else "during"

    def phase_at(self, at: float) -> str:
        if at < self.stopping:
            return "before"
        return "after" if at >= self.up else "during"

    async def send(
        self, http: httpx.AsyncClient, client: str, kind: str, method: str, url: str, **kwargs
    ) -> httpx.Response | None:
        sent = time.monotonic()
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.HTTPError:
            response = None
        answered = time.monotonic()
        status = None if response is None else response.status_code
        self.answers.append(
            Answer(
                kind=kind,
                sent=sent,
                seconds=answered - sent,
                status=status,
                maintenance=status == 503 and MAINTENANCE in response.text,
            )
        )
        if status == 200 and kind in READERS:
            self.served_once.add(client)
            if sent >= self.up:
                self.served_again.setdefault(client, answered)
        return response


def run(*, short: bool) -> Outcome:
    size = SHORT if short else FULL
    outcome = Outcome()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="drill-database-down-") as scratch,
        cluster_owned("drill-down") as cluster,
    ):
        scratch = Path(scratch)
        env = subprocess_env(DATABASE_URL=cluster.url())
        seeded = run_python(
            "-c", SEED, str(size.readers), str(size.buyer_accounts), env=env, timeout=120
        )
        if seeded.returncode != 0:
            raise RuntimeError("seeding the drill's cluster failed:\n" + seeded.stderr)
        sessions = json.loads(seeded.stdout.strip().splitlines()[-1])
        worker_settings = {
            "DATABASE_URL": cluster.url(),
            "SIMULATED_PROVIDER_BOOT_SECONDS": "0",
            "PROVISION_POLL_SECONDS": "0.3",
        }
        worker = Worker(
            log_path=scratch / "worker.log", env=worker_env(**worker_settings), supervised=True
        )
        gunicorn_log = scratch / "gunicorn.log"
        try:
            worker.start()
            with gunicorn_serving(env, log_path=gunicorn_log) as base:
                # A cluster made and migrated, customers, the worker and gunicorn started.
                outcome.figures["seconds to set up"] = round(time.monotonic() - started, 1)
                load = asyncio.run(drive(base, cluster, size, sessions))
            answers_report(load, size, outcome)
            work_report(load, cluster, outcome)
        finally:
            worker.stop()
            if outcome.violations:
                print("--- the worker's last output ---\n" + worker.output()[-4000:])
                if gunicorn_log.exists():
                    log = gunicorn_log.read_text(errors="replace")
                    print("--- gunicorn's last output ---\n" + log[-4000:])
    return outcome


async def drive(base: str, cluster, size: Size, sessions: dict) -> Load:
    load = Load()
    stop = asyncio.Event()
    stopped = asyncio.Event()  # PostgreSQL is down
    accounts = iter(sessions["buyers"])

    def client(cookie: str | None = None) -> httpx.AsyncClient:
        cookies = {"sessionid": cookie} if cookie else None
        return httpx.AsyncClient(base_url=base, cookies=cookies, timeout=CLIENT_TIMEOUT)

    async def reader(name: str, cookie: str | None, pages: list[str], kind: str):
        async with client(cookie) as http:
            for path in itertools.cycle(pages):
                if stop.is_set():
                    return
                await load.send(http, name, kind, "GET", path)
                await asyncio.sleep(THINK_SECONDS)

    async def buyer(first_held: bool):
        for cookie in accounts:
            if stop.is_set():
                return
            async with client(cookie) as http:
                # One event held back until PostgreSQL is down, as Stripe may deliver at
                # any moment: its delivery is sure to meet the outage.
                await buy(http, load, stop, hold=stopped if first_held else None)
            first_held = False
            await asyncio.sleep(RETRY_SECONDS)

    async def outage():
        # Every reader served once first (a cold gunicorn worker's first pages are slow),
        # and the held event's checkout through, so its delivery meets the outage (another
        # buyer's purchase will not do: the held one's checkout would then meet the outage
        # in its place, and its event be delivered only once the database is back).
        await served(lambda: load.served_once)
        await until(lambda: load.held is not None)
        await asyncio.sleep(size.before)
        load.stopping = time.monotonic()
        await asyncio.to_thread(cluster.stop)
        load.down = time.monotonic()
        stopped.set()
        await asyncio.sleep(size.outage)
        load.starting = time.monotonic()
        await asyncio.to_thread(cluster.start)
        load.up = time.monotonic()
        await served(lambda: load.served_again)
        await asyncio.sleep(size.after)
        stop.set()

    async def served(clients):
        """Until every reader has been served (or RECOVERY_LIMIT_SECONDS)."""
        await until(lambda: len(clients()) == size.readers + size.visitors)

    async def until(done):
        deadline = time.monotonic() + RECOVERY_LIMIT_SECONDS
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    readers = [
        reader(f"reader{n}", cookie, READER_PAGES, "page")
        for n, cookie in enumerate(sessions["readers"])
    ]
    visitors = [reader(f"visitor{n}", None, VISITOR_PAGES, "landing") for n in range(size.visitors)]
    buyers = [buyer(first_held=n == 0) for n in range(size.buyers)]
    await asyncio.gather(outage(), *readers, *visitors, *buyers)
    return load


async def buy(
    http: httpx.AsyncClient, load: Load, stop: asyncio.Event, hold: asyncio.Event | None
) -> None:
    """One customer's purchase: the plan's confirmation page and the checkout (again, as a
    customer reloads, until it goes through or the load ends), then Stripe's event
    (after `hold` is set, if given), delivered until the webhook accepts it however long
    that takes."""
    session_id = None
    while session_id is None and not stop.is_set():
        page = await load.send(http, "buyer", "checkout", "GET", CHECKOUT)
        token = CSRF_FIELD.search(page.text) if page is not None else None
        if token and page.status_code == 200:
            form = {"csrfmiddlewaretoken": token.group(1)}
            posted = await load.send(http, "buyer", "checkout", "POST", CHECKOUT, data=form)
            if posted is not None and posted.status_code == 303:
                session_id = SESSION_IN_URL.search(posted.headers["Location"]).group(1)
                break
        await asyncio.sleep(RETRY_SECONDS)
    if session_id is None:
        return
    purchase = Purchase(session_id=session_id, phase=load.phase_at(time.monotonic()))
    load.purchases.append(purchase)
    event = completed_event(session_id, "")  # one event, the same id at every delivery
    if hold is not None:
        load.held = purchase
        await hold.wait()
    deadline = time.monotonic() + WORK_LIMIT_SECONDS
    while time.monotonic() < deadline:
        body, signature = signed(event, settings.STRIPE_WEBHOOK_SECRET)
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        answer = await load.send(
            http, "buyer", "webhook", "POST", WEBHOOK, content=body, headers=headers
        )
        if answer is not None and answer.status_code == 200:
            purchase.delivered = True
            return
        purchase.refused += 1
        await asyncio.sleep(RETRY_SECONDS)


def answers_report(load: Load, size: Size, outcome: Outcome) -> None:
    figures = outcome.figures
    figures["seconds stopped"] = round(load.starting - load.down, 1)
    figures["seconds stopping and starting"] = round(
        load.down - load.stopping + load.up - load.starting, 1
    )
    figures["requests"] = len(load.answers)
    for phase in ("before", "during", "after"):
        statuses = Counter(str(a.status) for a in load.answers if load.phase(a) == phase)
        figures[f"answers {phase} the outage"] = dict(sorted(statuses.items()))
    during = [a.seconds for a in load.answers if load.phase(a) == "during"]
    figures["max latency during the outage s"] = round(max(during, default=0), 2)
    readers = size.readers + size.visitors
    recovery = max(load.served_again.values(), default=load.up) - load.up
    if len(load.served_again) == readers:
        figures["recovery seconds"] = round(recovery, 1)
    if len(load.served_again) < readers or recovery > RECOVERY_LIMIT_SECONDS:
        outcome.violations.append(
            f"{readers - len(load.served_again)} of {readers} readers were not served 200 "
            f"again within {RECOVERY_LIMIT_SECONDS} s of the restart (the last took "
            f"{recovery:.1f} s)"
        )

    statuses = Counter(a.status for a in load.answers)
    server_errors = sum(n for s, n in statuses.items() if s is not None and s >= 500 and s != 503)
    outcome.expect("500s (server errors other than 503)", server_errors, 0)
    outcome.expect("requests with no answer", statuses[None], 0)
    outcome.expect(
        "503s that are not the maintenance page",
        sum(1 for a in load.answers if a.status == 503 and not a.maintenance),
        0,
    )
    # The database is away from the stop until shortly after the start: a 503 answered
    # before the stop began, or asked for long after the start, is one too many.
    outcome.expect(
        "503s while the database was up",
        sum(
            1
            for a in load.answers
            if a.status == 503
            and (a.sent + a.seconds < load.stopping or a.sent > load.up + RECOVERY_LIMIT_SECONDS)
        ),
        0,
    )
    odd = Counter(
        f"{a.kind} {a.status}"
        for a in load.answers
        if a.status is not None and a.status < 500 and a.status not in EXPECTED[a.kind]
    )
    for what, count in sorted(odd.items()):
        outcome.violations.append(f"unexpected answers ({what}): {count}")


def work_report(load: Load, cluster, outcome: Outcome) -> None:
    """Waits (bounded) for every purchase to end with its server running and the queue
    to empty, then counts what is left."""
    figures = outcome.figures
    figures["purchases"] = dict(Counter(p.phase for p in load.purchases))
    waited = sum(p.refused > 0 for p in load.purchases)
    figures["purchases whose event waited out the outage"] = waited
    if not waited:
        outcome.violations.append("no event was delivered during the outage: nothing was drilled")
    outcome.expect(
        "purchases whose event was never accepted", sum(not p.delivered for p in load.purchases), 0
    )
    periodic = sorted(
        periodic.task.name for periodic in app.periodic_registry.periodic_tasks.values()
    )
    sessions = [p.session_id for p in load.purchases]
    started = time.monotonic()
    with psycopg.connect(
        host=str(cluster.data), dbname=localdb.DB_NAME, user=localdb.DB_USER, autocommit=True
    ) as db:
        while True:
            left = work_left(db, sessions, periodic)
            if not any(left.values()) or time.monotonic() - started > WORK_LIMIT_SECONDS:
                break
            time.sleep(0.5)
        figures["work done seconds after the load"] = round(time.monotonic() - started, 1)
        ((done, failed),) = db.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " count(*) FILTER (WHERE status = 'failed')"
            " FROM procrastinate_jobs WHERE NOT task_name = ANY(%s)",
            [periodic],
        ).fetchall()
    figures["jobs done"] = done
    for what, count in left.items():
        outcome.expect(what, count, 0)
    outcome.expect("jobs failed", failed, 0)


def work_left(db, sessions: list[str], periodic: list[str]) -> dict[str, int]:
    ((payments, not_paid, not_running),) = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE p.status <> 'succeeded'),"
        " count(*) FILTER (WHERE s.status IS DISTINCT FROM 'running')"
        " FROM billing_payment p LEFT JOIN servers_server s ON s.payment_id = p.id"
        " WHERE p.stripe_checkout_session_id = ANY(%s)",
        [sessions],
    ).fetchall()
    ((jobs,),) = db.execute(
        "SELECT count(*) FROM procrastinate_jobs"
        " WHERE status IN ('todo', 'doing') AND NOT task_name = ANY(%s)",
        [periodic],
    ).fetchall()
    return {
        "purchases with no payment": len(sessions) - payments,
        "payments not taken": not_paid,
        "servers not running": not_running,
        "jobs left waiting or running": jobs,
    }
