"""Server jobs: load by id, call a service; safe to run twice. Every job that touches a
server holds the procrastinate lock `server:<id>`, so two never run on one server at once."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.contrib.django import app

from hosting.jobs import CUSTOMER_WAITING, defer
from hosting.tasks import DEFAULT_RETRY, GATEWAY_RETRY
from servers import notifications, services
from servers.models import Server
from servers.providers import ProviderError


class ProvisionRetry(BaseRetryStrategy):
    """PROVISION_ATTEMPTS attempts in all, PROVISION_RETRY_SECONDS doubling between them
    (longer when the provider asks for it); read when a job fails, so a drill can shorten
    them without a restart of the code."""

    def wait_seconds(self, *, exception, job) -> float | None:
        """Seconds until the next attempt; None when this attempt was the last."""
        if isinstance(exception, services.ProvisionTimedOut):
            return None
        if job.attempts + 1 >= settings.PROVISION_ATTEMPTS:
            return None
        wait = settings.PROVISION_RETRY_SECONDS * 2**job.attempts
        if isinstance(exception, ProviderError) and exception.retry_after:
            wait = max(wait, exception.retry_after)
        return wait

    def get_retry_decision(self, *, exception, job) -> RetryDecision | None:
        wait = self.wait_seconds(exception=exception, job=job)
        return None if wait is None else RetryDecision(retry_in={"seconds": wait})


def failure_reason(exc: BaseException) -> str:
    """What the customer reads: a provider's message is written for them; anything else
    is our fault and gets a plain sentence (the details are in the job's log)."""
    if isinstance(exc, ProviderError | services.ProvisionTimedOut):
        return str(exc)
    return "An internal error stopped the build."


@app.task(queue="servers", pass_context=True, retry=ProvisionRetry(), priority=CUSTOMER_WAITING)
def server_provision(context, server_id: int) -> None:
    try:
        wait = services.server_provision_step(server_id=server_id)
    except Exception as exc:
        wait = context.task.retry_strategy.wait_seconds(exception=exc, job=context.job)
        if wait is None:  # the last attempt: procrastinate has no hook for this
            services.server_provision_fail(server_id=server_id, reason=failure_reason(exc))
        else:
            services.server_provision_retrying(
                server_id=server_id,
                reason=failure_reason(exc),
                attempt=context.job.attempts + 1,
                wait=wait,
            )
        raise
    if wait is not None:
        # Look again later without holding a worker: a new job, under the same lock.
        defer(
            server_provision,
            lock=services.server_lock(server_id),
            schedule_in={"seconds": wait},
            server_id=server_id,
        )


@app.task(queue="servers", retry=GATEWAY_RETRY)
def droplet_destroy(server_id: int) -> None:
    services.droplet_destroy_for(server_id=server_id)


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def server_notify(server_id: int, kind: str) -> None:
    notifications.server_mail(Server.objects.select_related("user", "plan").get(pk=server_id), kind)


@app.periodic(cron="* * * * *")
@app.task(queue="servers", queueing_lock="provisioning_watch")
def provisioning_watch(timestamp: int) -> int:
    """A server still `provisioning` after PROVISION_TIMEOUT is failed and refunded, even
    when no job is left to notice (a lost job, a wedged provider)."""
    limit = timezone.now() - timedelta(seconds=settings.PROVISION_TIMEOUT)
    late = Server.objects.filter(status=Server.Status.PROVISIONING, created_at__lt=limit)
    failed = 0
    for server_id in late.values_list("pk", flat=True):
        failed += services.server_provision_fail(
            server_id=server_id, reason=services.provision_timeout_reason()
        )
    return failed


# -- deployments ------------------------------------------------------------------------


@app.task(queue="deployments", pass_context=True, priority=CUSTOMER_WAITING)
def deployment_run(context, deployment_id: int) -> None:
    """Run one deployment under its server's lock. Never retried: a deployment that could
    not finish is failed with its reason, and the customer deploys again."""
    from servers import deployments

    deployments.deployment_execute(deployment_id=deployment_id, job_id=context.job.id)


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def deployment_notify(deployment_id: int) -> None:
    from servers.models import Deployment

    notifications.deployment_failed_mail(
        Deployment.objects.select_related("server", "user").get(pk=deployment_id)
    )


@app.periodic(cron=settings.JOBS_RECOVERY_SCHEDULE)
@app.task(queue="maintenance", queueing_lock="deployments_recover")
def deployments_recover(timestamp: int) -> int:
    """Deployments left `in_progress` by a worker that died are failed with the reason
    (by the next run after the queue noticed the worker was gone: within a minute)."""
    from servers import deployments

    return deployments.deployments_recover()


# -- server actions -----------------------------------------------------------------------


@app.task(queue="servers", retry=DEFAULT_RETRY, priority=CUSTOMER_WAITING)
def server_action_run(action_id: int) -> None:
    """One step of a power action or password reset, under the server's lock. While the
    provider works, the job defers itself again (same lock) instead of sleeping; the
    password never travels in a job's arguments, only the action's id."""
    from servers import actions

    wait = actions.server_action_step(action_id=action_id)
    if wait is not None:
        from servers.models import ServerAction

        server_id = ServerAction.objects.values_list("server_id", flat=True).get(pk=action_id)
        defer(
            server_action_run,
            lock=services.server_lock(server_id),
            schedule_in={"seconds": wait},
            action_id=action_id,
        )


@app.periodic(cron="* * * * *")
@app.task(queue="maintenance", queueing_lock="server_actions_watch")
def server_actions_watch(timestamp: int) -> int:
    """Actions still in progress after SERVER_ACTION_TIMEOUT are failed with the reason, so
    a button is never stuck "in progress" (a lost job, a provider that never answers)."""
    from servers import actions

    return actions.server_actions_expire()


# -- domains ----------------------------------------------------------------------------


@app.task(queue="domains", retry=DEFAULT_RETRY)
def domain_verify(domain_id: int) -> None:
    from servers import domains

    domains.domain_verify_step(domain_id=domain_id)


@app.task(queue="domains", retry=DEFAULT_RETRY)
def domain_https_check(domain_id: int) -> None:
    """One look at the certificate; while it is being issued, look again later under the
    same lock (a new job, so no worker waits)."""
    from servers import domains

    wait = domains.domain_https_step(domain_id=domain_id)
    if wait is not None:
        defer(
            domain_https_check,
            lock=domains.domain_lock(domain_id),
            schedule_in={"seconds": wait},
            domain_id=domain_id,
        )


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def domain_notify(domain_id: int, kind: str) -> None:
    from servers.models import Domain

    domain = Domain.objects.select_related("server", "user").filter(pk=domain_id).first()
    if domain is not None:  # removed since: nothing to say
        notifications.domain_mail(domain, kind)


@app.periodic(cron="* * * * *")
@app.task(queue="maintenance", queueing_lock="domains_watch")
def domains_watch(timestamp: int) -> int:
    """DNS checks of domains not verified yet, as their backoff falls due; HTTPS checks of
    certificates last looked at long ago (the expiry watch)."""
    from django.db import transaction
    from procrastinate.contrib.django.models import ProcrastinateJob

    from servers import domains

    now = timezone.now()
    # A domain whose check is still queued is not queued again: when the checks take
    # longer than a minute (17,000 domains at scale) they would pile up without end.
    waiting = set(
        ProcrastinateJob.objects.filter(
            status="todo", task_name__in=[domain_verify.name, domain_https_check.name]
        ).values_list("lock", flat=True)
    )
    due_dns = [d for d in domains.domains_due_for_dns(now) if domains.domain_lock(d) not in waiting]
    due_https = [
        d for d in domains.domains_due_for_https(now) if domains.domain_lock(d) not in waiting
    ]
    with transaction.atomic():
        for domain_id in due_dns:
            defer(domain_verify, lock=domains.domain_lock(domain_id), domain_id=domain_id)
        for domain_id in due_https:
            defer(domain_https_check, lock=domains.domain_lock(domain_id), domain_id=domain_id)
    return len(due_dns) + len(due_https)
