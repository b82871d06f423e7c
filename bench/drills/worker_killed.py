"""Worker killed: the real worker (`manage.py worker`: the supervisor and procrastinate's
worker under it) is SIGKILLed, its whole process group, while servers are being built
(the simulated provider) and while deployments run (the local runner: real git, real
bash), then started again, round after round. procrastinate's stalled-job recovery
(hosting.tasks.jobs_recover_stalled) and the deployments' (servers.tasks.
deployments_recover) must bring everything to an end: no job left waiting or running,
one droplet per server, every server running, every deployment finished.

Each round new purchases and deployments are made, and the kill aims at one of three
moments in turn: a provisioning job running, a droplet created whose creation has not
answered yet, a deployment running; once it is seen, the kill comes a random moment
later. The jobs the dead worker held are counted as it dies. The figures name the seed
of the random moments: DRILL_SEED=<seed> aims the kills of a run the same way again.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.test import Client
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import User
from bench.drills import Outcome
from billing.tests.flow import completed_event, deliver, start_checkout
from billing.tests.worker import Worker, worker_env
from servers import deployments
from servers.models import (
    Deployment,
    DeploymentStatus,
    Server,
    ServerEvent,
    ServerEventKind,
    SimulatedDroplet,
)
from servers.services import droplet_tag
from servers.tests.conftest import bare_repository

NAME = "worker killed"

PROVISION_TASK = "servers.tasks.server_provision"
DEPLOYMENT_TASK = deployments.DEPLOYMENT_TASK
FINAL_DEPLOYMENT = {DeploymentStatus.SUCCESS, DeploymentStatus.FAILED}
# A create answers CREATE_SECONDS after the droplet exists (DigitalOcean's answer takes
# about a second): the window where a kill leaves a droplet we have no record of, and
# only the retried job's search by its tag stops a second one.
CREATE_SECONDS = 0.5
# The production clocks (a heartbeat every 10 s, dead after 30 s, recovery every minute)
# made short, so a round takes seconds, not minutes: the same code on shorter clocks. A
# sixth cron field is seconds.
CLOCKS = {
    "WORKER_HEARTBEAT_SECONDS": "1",
    "WORKER_STALLED_SECONDS": "3",
    "JOBS_RECOVERY_SCHEDULE": "* * * * * */1",
    "SIMULATED_PROVIDER_BOOT_SECONDS": "1",
    "SIMULATED_PROVIDER_CREATE_SECONDS": str(CREATE_SECONDS),
    "PROVISION_POLL_SECONDS": "0.3",
}
# How long everything may take to finish after a restart before the round is a failure.
RECOVERY_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Size:
    rounds: int
    purchases_per_round: int
    deploy_servers: int
    deployments_per_round: int


SHORT = Size(rounds=4, purchases_per_round=3, deploy_servers=2, deployments_per_round=4)
FULL = Size(rounds=20, purchases_per_round=5, deploy_servers=4, deployments_per_round=8)


@dataclass
class Tally:
    kills: int = 0
    targets: Counter = field(default_factory=Counter)  # target name -> kills aimed at it
    cut_off: Counter = field(default_factory=Counter)  # task name -> jobs the kills cut off
    kills_hitting: Counter = field(default_factory=Counter)  # task name -> kills mid-job
    recoveries: list[float] = field(default_factory=list)


def run(*, short: bool) -> Outcome:
    size = SHORT if short else FULL
    seed = int(os.environ.get("DRILL_SEED") or time.time())
    rng = random.Random(seed)  # noqa: S311 (when to kill, not a secret)
    outcome = Outcome(figures={"seed": seed})
    with tempfile.TemporaryDirectory(prefix="drill-worker-killed-") as scratch:
        scratch = Path(scratch)
        repo = bare_repository(scratch)
        env = worker_env(
            **CLOCKS,
            DEPLOY_ALLOW_LOCAL_GIT_URLS="true",
            DEPLOY_WORKSPACE_DIR=str(scratch / "workspaces"),
        )
        worker = Worker(log_path=scratch / "worker.log", env=env, supervised=True).start()
        try:
            drill(size, rng, worker, repo.url, outcome)
        finally:
            worker.stop()
            if outcome.violations:
                print("--- the worker's last output ---\n" + worker.output()[-6000:])
    return outcome


def drill(size: Size, rng: random.Random, worker: Worker, git_url: str, outcome: Outcome):
    client = Client()
    customers = itertools.count()

    def buy(count: int) -> None:
        for _ in range(count):
            purchase(client, f"killed{next(customers)}@example.com")

    # Servers to deploy to, built before the first kill.
    buy(size.deploy_servers)
    if not settle(RECOVERY_LIMIT_SECONDS):
        outcome.violations.append("the first servers were not built with no kill at all")
        return
    deploy_to = list(Server.objects.values_list("pk", flat=True))

    tally = Tally()
    for number in range(size.rounds):
        target = TARGETS[number % len(TARGETS)]
        buy(size.purchases_per_round)
        for index in range(size.deployments_per_round):
            deployments.deployment_create(
                server_id=deploy_to[index % len(deploy_to)], git_url=git_url, branch="main"
            )
        if not seen(target.now, timeout=15):
            outcome.violations.append(f"round {number + 1}: never saw {target.name}")
            return
        time.sleep(rng.uniform(0, target.kill_within))
        worker.kill()
        tally.kills += 1
        tally.targets[target.name] += 1
        held = Counter(
            ProcrastinateJob.objects.filter(status="doing").values_list("task_name", flat=True)
        )
        tally.cut_off.update(held)
        tally.kills_hitting.update(held.keys())

        restarted = time.monotonic()
        worker.start()
        if not settle(RECOVERY_LIMIT_SECONDS):
            outcome.violations.append(
                f"round {number + 1}: work left unfinished {RECOVERY_LIMIT_SECONDS} s "
                f"after the restart: {unfinished()}"
            )
            break
        tally.recoveries.append(time.monotonic() - restarted)

    report(tally, outcome)


def purchase(client: Client, email: str) -> None:
    """A customer pays for a server: checkout, then Stripe's completed event, through the
    real views; the provisioning job is deferred by the webhook."""
    user = User.objects.create_user(email=email, password=None)
    payment = start_checkout(client, user, "basic")
    event = completed_event(payment.stripe_checkout_session_id, str(payment.uuid))
    response = deliver(client, event)
    assert response.status_code == 200, response.content[:300]


def job_running(task_name: str) -> bool:
    return ProcrastinateJob.objects.filter(status="doing", task_name=task_name).exists()


def droplet_unrecorded() -> bool:
    """A droplet exists whose server has not recorded it yet: a create has not answered."""
    building = Server.objects.filter(status=Server.Status.PROVISIONING, provider_id="")
    return any(
        SimulatedDroplet.objects.filter(tags__contains=[droplet_tag(server)]).exists()
        for server in building.only("uuid")
    )


@dataclass(frozen=True)
class Target:
    """Where a round's kill lands: once `now()` is true, within `kill_within` seconds."""

    name: str
    now: Callable[[], bool]
    kill_within: float


TARGETS = [
    Target("a droplet's creation", droplet_unrecorded, CREATE_SECONDS / 2),
    Target("a deployment", lambda: job_running(DEPLOYMENT_TASK), 0.3),
    Target("a provisioning job", lambda: job_running(PROVISION_TASK), 1.0),
]


def seen(now: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if now():
            return True
        time.sleep(0.01)
    return False


def periodic_tasks() -> set[str]:
    return {periodic.task.name for periodic in app.periodic_registry.periodic_tasks.values()}


def unfinished() -> dict[str, int]:
    """What is not done yet: jobs waiting or running (the periodic ones aside: they are
    always due again), servers not running, deployments not finished."""
    jobs = Counter(
        ProcrastinateJob.objects.filter(status__in=["todo", "doing"])
        .exclude(task_name__in=periodic_tasks())
        .values_list("task_name", flat=True)
    )
    left = {f"{task} jobs": count for task, count in jobs.items()}
    servers = Server.objects.exclude(status=Server.Status.RUNNING).count()
    stuck = Deployment.objects.exclude(status__in=FINAL_DEPLOYMENT).count()
    if servers:
        left["servers not running"] = servers
    if stuck:
        left["deployments not finished"] = stuck
    return left


def settle(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while unfinished():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def report(tally: Tally, outcome: Outcome) -> None:
    figures = outcome.figures
    figures["kills"] = tally.kills
    figures["kills aimed at"] = dict(tally.targets)
    figures["kills mid-provisioning"] = tally.kills_hitting[PROVISION_TASK]
    figures["kills mid-deployment"] = tally.kills_hitting[DEPLOYMENT_TASK]
    figures["jobs cut off"] = sum(tally.cut_off.values())
    if tally.recoveries:
        figures["recovery seconds p50"] = round(statistics.median(tally.recoveries), 1)
        figures["recovery seconds max"] = round(max(tally.recoveries), 1)
    figures["servers"] = Server.objects.count()
    figures["deployments"] = Deployment.objects.count()

    droplets = Counter(
        tag for tags in SimulatedDroplet.objects.values_list("tags", flat=True) for tag in tags
    )
    tags = {droplet_tag(server) for server in Server.objects.only("uuid")}
    duplicates = sum(count - 1 for tag, count in droplets.items() if count > 1)
    # A kill between the droplet's creation and its record: the retried job must adopt it.
    figures["droplets adopted after a kill"] = ServerEvent.objects.filter(
        kind=ServerEventKind.DROPLET_REQUESTED, message__startswith="Found the server"
    ).count()
    figures["duplicate droplets"] = duplicates
    outcome.expect("duplicate droplets", duplicates, 0)
    outcome.expect("servers without a droplet", len(tags - set(droplets)), 0)
    outcome.expect(
        "servers not running", Server.objects.exclude(status=Server.Status.RUNNING).count(), 0
    )

    stuck = Deployment.objects.exclude(status__in=FINAL_DEPLOYMENT).count()
    figures["deployments stuck"] = stuck
    outcome.expect("deployments stuck", stuck, 0)
    failed = Counter(
        Deployment.objects.filter(status=DeploymentStatus.FAILED).values_list(
            "failure_reason", flat=True
        )
    )
    figures["deployments failed by a kill"] = failed.pop(deployments.WORKER_DIED_REASON, 0)
    for reason, count in failed.items():
        outcome.violations.append(f"{count} deployments failed for another reason: {reason}")

    jobs = Counter(
        ProcrastinateJob.objects.exclude(task_name__in=periodic_tasks()).values_list(
            "status", flat=True
        )
    )
    figures["jobs"] = dict(sorted(jobs.items()))
    outcome.expect("jobs left waiting or running", jobs["todo"] + jobs["doing"], 0)
    outcome.expect("jobs failed", jobs["failed"], 0)
