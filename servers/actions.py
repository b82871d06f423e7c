"""What a customer (or staff) does to a running server: start, stop, reboot, a new login
password, and reading the current one. Each request is a ServerAction row, written with a
ServerEvent and its job in one transaction; the job (servers.tasks.server_action_run)
holds the server's lock, does one step, and defers itself again while the provider works,
so no worker sleeps and two actions never run on one server at once.

The database allows one unfinished action per server (a partial unique index): a second
click finds it and is refused with a message instead of being queued twice.

Lock order: the server row, then its action (as the deployment service locks the server).
The password only ever lives in the encrypted fields and in memory: never in a job's
arguments, a log line, an event or the audit trail.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosting.jobs import defer
from servers import credentials
from servers.models import (
    ENDED_SERVER_STATUSES,
    Deployment,
    DeploymentStatus,
    Server,
    ServerAction,
    ServerActionKind,
    ServerActionStatus,
    ServerEventKind,
)
from servers.providers import ProviderError, get_provider
from servers.providers.base import ACTION_COMPLETED, ACTION_ERRORED
from servers.services import server_event_record, server_lock

ONE_OPEN_ACTION = "servers_serveraction_one_open_per_server"
POWER_KINDS = (ServerActionKind.START, ServerActionKind.STOP, ServerActionKind.REBOOT)

# How each action is named in a sentence, and what its button says while it runs.
NOUNS = {
    ServerActionKind.START: "start",
    ServerActionKind.STOP: "stop",
    ServerActionKind.REBOOT: "reboot",
    ServerActionKind.PASSWORD_RESET: "password reset",
}
PROGRESS_LABELS = {
    ServerActionKind.START: "Starting…",
    ServerActionKind.STOP: "Stopping…",
    ServerActionKind.REBOOT: "Rebooting…",
    ServerActionKind.PASSWORD_RESET: "Resetting the password…",
}
DEPLOYMENT_RUNNING = "A deployment is running; wait for it to finish or cancel it first."


class ActionRefused(Exception):
    """The action cannot run now; the message says why, in words for the customer."""


def in_progress_message(kind: str) -> str:
    return f"A {NOUNS[ServerActionKind(kind)]} is already in progress."


def _state_refusal(server: Server, kind: str) -> str | None:
    """Why `kind` may not run on the server in its current state, or None when it may."""
    if server.status == Server.Status.PROVISIONING:
        return "The server is still being built."
    if server.status in ENDED_SERVER_STATUSES:
        return "This server no longer exists."
    if server.status == Server.Status.SUSPENDED:
        return "This server is suspended: see Billing, or write to support."
    if kind == ServerActionKind.START:
        if server.status == Server.Status.RUNNING:
            return "The server is already running."
    elif server.status == Server.Status.STOPPED:
        if kind == ServerActionKind.STOP:
            return "The server is already stopped."
        return f"The server is stopped; start it before a {NOUNS[ServerActionKind(kind)]}."
    return None


def server_action_request(
    *,
    server_id: int,
    kind: str,
    actor,
    staff: bool = False,
    request=None,
) -> ServerAction:
    """Ask for `kind` (start, stop, reboot, password_reset) on a server: the action row, an
    ACTION_REQUESTED event and the job, together or not at all. Raises ActionRefused (and
    changes nothing) when the server's state does not allow it, another action is still
    in progress, or a deployment is pending or running. `staff` requests are audited."""
    from accounts.models import AuditAction
    from accounts.services import audit_event_record
    from servers.tasks import server_action_run

    kind = ServerActionKind(kind)
    with transaction.atomic():
        server = (
            Server.objects.select_for_update()
            .only("pk", "status", "name", "provider_id", "ssh_username")
            .get(pk=server_id)
        )
        # The database, not a check in Python, says whether another action is open. The
        # savepoint keeps this transaction usable after the refusal.
        try:
            with transaction.atomic():
                action = ServerAction.objects.create(server=server, kind=kind, requested_by=actor)
        except IntegrityError as exc:
            if ONE_OPEN_ACTION not in str(exc):
                raise
            open_kind = (
                ServerAction.objects.filter(server=server, status=ServerActionStatus.IN_PROGRESS)
                .values_list("kind", flat=True)
                .first()
            )
            raise ActionRefused(in_progress_message(open_kind or kind)) from None
        # Raising from here on rolls the new action back with everything else.
        refusal = _state_refusal(server, kind)
        if refusal:
            raise ActionRefused(refusal)
        if Deployment.objects.filter(
            server=server, status__in=[DeploymentStatus.PENDING, DeploymentStatus.IN_PROGRESS]
        ).exists():
            raise ActionRefused(DEPLOYMENT_RUNNING)
        who = " by our staff" if staff else ""
        server_event_record(
            server=server,
            kind=ServerEventKind.ACTION_REQUESTED,
            message=_requested_message(kind) + f"{who}.",
        )
        if staff:
            audit_event_record(
                action=AuditAction.STAFF_ACTION,
                actor=actor,
                request=request,
                target=server,
                metadata={"action": f"server_{kind.value}"},
            )
        defer(server_action_run, lock=server_lock(server.pk), action_id=action.pk)
    return action


def server_suspend(*, server_id: int, reason: str) -> bool:
    """Billing suspends the server, in the caller's transaction: `suspended` (the
    customer's actions and deployments are refused), on the timeline with `reason`, and
    powered off by a system stop action (graceful, then a power cut). Whatever action or
    deployment was under way is ended first. False when the server is not running or
    stopped (being built, already suspended, or gone)."""
    from servers.deployments import deployment_cancel
    from servers.tasks import server_action_run

    server = Server.objects.select_for_update().get(pk=server_id)
    if server.status not in (Server.Status.RUNNING, Server.Status.STOPPED):
        return False
    was_running = server.status == Server.Status.RUNNING
    _open_action_end(server, reason="The server was suspended.")
    unfinished = Deployment.objects.filter(
        server=server, status__in=[DeploymentStatus.PENDING, DeploymentStatus.IN_PROGRESS]
    )
    for deployment_id in unfinished.values_list("pk", flat=True):
        deployment_cancel(deployment_id=deployment_id)
    server.status = Server.Status.SUSPENDED
    server.save(update_fields=["status", "updated_at"])
    server_event_record(server=server, kind=ServerEventKind.SUSPENDED, message=reason)
    if was_running:
        action = ServerAction.objects.create(server=server, kind=ServerActionKind.STOP)
        defer(server_action_run, lock=server_lock(server.pk), action_id=action.pk)
    return True


def server_resume(*, server_id: int, reason: str) -> bool:
    """Billing lifts a suspension, in the caller's transaction: the server is `stopped`
    again and a system start action powers it on (it is `running` once the provider says
    so). False when it was not suspended."""
    from servers.tasks import server_action_run

    server = Server.objects.select_for_update().get(pk=server_id)
    if server.status != Server.Status.SUSPENDED:
        return False
    _open_action_end(server, reason="The suspension was lifted.")
    server.status = Server.Status.STOPPED
    server.save(update_fields=["status", "updated_at"])
    server_event_record(server=server, kind=ServerEventKind.RESUMED, message=reason)
    action = ServerAction.objects.create(server=server, kind=ServerActionKind.START)
    defer(server_action_run, lock=server_lock(server.pk), action_id=action.pk)
    return True


def _open_action_end(server: Server, *, reason: str) -> None:
    """End the server's unfinished action, if any: its job, polling next, finds it ended
    and stops; the one-open-action index then takes billing's."""
    open_action = (
        ServerAction.objects.filter(server=server, status=ServerActionStatus.IN_PROGRESS)
        .values_list("pk", flat=True)
        .first()
    )
    if open_action is not None:
        server_action_fail(action_id=open_action, reason=reason)


def _requested_message(kind: ServerActionKind) -> str:
    return {
        ServerActionKind.START: "Start requested",
        ServerActionKind.STOP: "Stop requested (a graceful shutdown)",
        ServerActionKind.REBOOT: "Reboot requested",
        ServerActionKind.PASSWORD_RESET: "New login password requested",
    }[kind]


def server_password_reveal(*, server_id: int, actor, request=None) -> str:
    """The server's login password, for its owner who has just confirmed who they are (the
    view sees to that); the reveal is written to the audit trail, the password is not."""
    from accounts.models import AuditAction
    from accounts.services import audit_event_record

    with transaction.atomic():
        server = Server.objects.only("pk", "status", "name", "ssh_password").get(pk=server_id)
        if server.status not in (Server.Status.RUNNING, Server.Status.STOPPED):
            raise ActionRefused("This server has no login to show.")
        if not server.ssh_password:
            raise ActionRefused("This server has no password yet.")
        audit_event_record(
            action=AuditAction.SERVER_PASSWORD_REVEAL,
            actor=actor,
            request=request,
            target=server,
            metadata={"server": server.name},
        )
    return server.ssh_password


# -- the job's steps ------------------------------------------------------------------------


def server_action_step(*, action_id: int) -> float | None:
    """One pass of an action's job. Returns the seconds to wait before the next pass, or
    None when the action has ended (or had already ended: a job run twice changes
    nothing)."""
    action = ServerAction.objects.select_related("server").get(pk=action_id)
    if action.status != ServerActionStatus.IN_PROGRESS:
        return None
    if action.server.status in ENDED_SERVER_STATUSES:
        server_action_fail(action_id=action.pk, reason="The server was deleted.")
        return None
    if action.kind == ServerActionKind.PASSWORD_RESET:
        _password_reset_step(action)
        return None
    return _power_step(action)


def _send(provider, action: ServerAction) -> str:
    droplet_id = action.server.provider_id
    if action.kind == ServerActionKind.START:
        return provider.power_on(droplet_id)
    if action.kind == ServerActionKind.REBOOT:
        return provider.reboot(droplet_id)
    if action.forced:
        return provider.power_off(droplet_id)
    return provider.shutdown(droplet_id)


def _power_step(action: ServerAction) -> float | None:
    provider = get_provider()
    sending = not action.provider_action_id
    try:
        if sending:
            provider_action_id = _send(provider, action)
            _action_sent(action_id=action.pk, provider_action_id=provider_action_id)
            return settings.POWER_POLL_SECONDS
        status = provider.action_status(action.server.provider_id, action.provider_action_id)
    except ProviderError as exc:
        # A rate limit: ask again when the provider says. A 5xx or a network failure while
        # following an action that was sent: look again (the timeout watch bounds it). Sent
        # POSTs are not repeated on a 5xx: the provider may have started the action.
        if exc.retry_after is not None:
            return max(exc.retry_after, settings.POWER_POLL_SECONDS)
        if exc.transient and not sending:
            return settings.POWER_POLL_SECONDS
        server_action_fail(action_id=action.pk, reason=str(exc))
        return None
    if status == ACTION_COMPLETED:
        server_action_complete(action_id=action.pk)
        return None
    if action.kind == ServerActionKind.STOP and not action.forced:
        if status == ACTION_ERRORED:
            return _force_stop(action, reason="The graceful shutdown failed.")
        grace = timedelta(seconds=settings.STOP_GRACE_SECONDS)
        if timezone.now() - action.created_at >= grace:
            return _force_stop(
                action,
                reason=(
                    f"The graceful shutdown did not finish within {settings.STOP_GRACE_SECONDS} s."
                ),
            )
    if status == ACTION_ERRORED:
        server_action_fail(action_id=action.pk, reason=f"The provider could not {_verb(action)}.")
        return None
    return settings.POWER_POLL_SECONDS


def _verb(action: ServerAction) -> str:
    return {
        ServerActionKind.START: "start the server",
        ServerActionKind.STOP: "stop the server",
        ServerActionKind.REBOOT: "reboot the server",
    }[ServerActionKind(action.kind)]


def _action_sent(*, action_id: int, provider_action_id: str) -> None:
    with transaction.atomic():
        ServerAction.objects.filter(pk=action_id, status=ServerActionStatus.IN_PROGRESS).update(
            provider_action_id=provider_action_id
        )


def _force_stop(action: ServerAction, *, reason: str) -> float | None:
    """The graceful shutdown did not do it: cut the power, and say so on the timeline."""
    with transaction.atomic():
        server = Server.objects.select_for_update().get(pk=action.server_id)
        updated = ServerAction.objects.filter(
            pk=action.pk, status=ServerActionStatus.IN_PROGRESS, forced=False
        ).update(forced=True, provider_action_id="")
        if not updated:
            return None
        server_event_record(
            server=server,
            kind=ServerEventKind.ACTION_REQUESTED,
            message=f"{reason} Powering the server off instead.",
        )
    return 0


def server_action_complete(*, action_id: int) -> bool:
    """The provider finished the action: the server's new status, the timeline line, the
    action succeeded. False when the action had already ended."""
    with transaction.atomic():
        action = ServerAction.objects.get(pk=action_id)
        server = Server.objects.select_for_update().get(pk=action.server_id)
        action = ServerAction.objects.select_for_update().get(pk=action_id)
        if action.status != ServerActionStatus.IN_PROGRESS:
            return False
        kind = ServerActionKind(action.kind)
        if kind == ServerActionKind.START:
            event, message, status = ServerEventKind.STARTED, "The server is running.", "running"
        elif kind == ServerActionKind.STOP:
            event, status = ServerEventKind.STOPPED, "stopped"
            message = "The server was powered off." if action.forced else "The server shut down."
        else:
            event, message, status = ServerEventKind.REBOOTED, "The server restarted.", None
        if status and server.status in (Server.Status.RUNNING, Server.Status.STOPPED):
            server.status = status
            server.save(update_fields=["status", "updated_at"])
        action.status = ServerActionStatus.SUCCEEDED
        action.finished_at = timezone.now()
        action.save(update_fields=["status", "finished_at"])
        server_event_record(server=server, kind=event, message=message)
    return True


def server_action_fail(*, action_id: int, reason: str) -> bool:
    """End an action that could not be done, with the reason on the timeline. False when it
    had already ended."""
    with transaction.atomic():
        action = ServerAction.objects.get(pk=action_id)
        server = Server.objects.select_for_update().get(pk=action.server_id)
        action = ServerAction.objects.select_for_update().get(pk=action_id)
        if action.status != ServerActionStatus.IN_PROGRESS:
            return False
        action.status = ServerActionStatus.FAILED
        action.reason = reason
        action.new_password = ""
        action.finished_at = timezone.now()
        action.save(update_fields=["status", "reason", "new_password", "finished_at"])
        noun = NOUNS[ServerActionKind(action.kind)]
        server_event_record(
            server=server,
            kind=ServerEventKind.ACTION_FAILED,
            message=f"The {noun} failed: {reason}",
        )
    return True


def action_timeout_reason(kind: str) -> str:
    seconds = settings.SERVER_ACTION_TIMEOUT
    took = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} s"
    return f"The {NOUNS[ServerActionKind(kind)]} did not finish within {took}."


def server_actions_expire() -> int:
    """Fail every action in progress for longer than SERVER_ACTION_TIMEOUT, so no button
    stays "in progress" for good (a lost job, a provider that never answers)."""
    limit = timezone.now() - timedelta(seconds=settings.SERVER_ACTION_TIMEOUT)
    late = ServerAction.objects.filter(
        status=ServerActionStatus.IN_PROGRESS, created_at__lt=limit
    ).values_list("pk", "kind")
    return sum(
        server_action_fail(action_id=pk, reason=action_timeout_reason(kind)) for pk, kind in late
    )


# -- password reset -------------------------------------------------------------------------


def _new_password_for(action: ServerAction) -> str:
    """The action's new password, made once: a retried job sets the same one."""
    if action.new_password:
        return action.new_password
    with transaction.atomic():
        locked = ServerAction.objects.select_for_update().get(pk=action.pk)
        if not locked.new_password:
            locked.new_password = credentials.generate_password()
            locked.save(update_fields=["new_password"])
    return locked.new_password


def _password_reset_step(action: ServerAction) -> None:
    from servers.runners import RunnerError, runner_for

    retried = bool(action.new_password)
    new_password = _new_password_for(action)
    server = Server.objects.get(pk=action.server_id)
    # A retried job may find the server already holding the new password (the last run
    # set it, then died): sudo with that one when the stored one no longer works.
    current = [server.ssh_password] + ([new_password] if retried else [])
    runner = runner_for(server)
    for attempt, password in enumerate(current, start=1):
        try:
            runner.set_password(
                username=server.ssh_username, current_password=password, new_password=new_password
            )
            break
        except RunnerError as exc:
            if attempt == len(current):
                server_action_fail(action_id=action.pk, reason=str(exc))
                return
    server_password_store(action_id=action.pk, password=new_password)


def server_password_store(*, action_id: int, password: str) -> None:
    """The server now has `password`: keep it (encrypted), forget the action's copy. Stored
    even when the timeout watch failed the action meanwhile, since the server has it."""
    with transaction.atomic():
        action = ServerAction.objects.get(pk=action_id)
        server = Server.objects.select_for_update().get(pk=action.server_id)
        action = ServerAction.objects.select_for_update().get(pk=action_id)
        server.ssh_password = password
        server.save(update_fields=["ssh_password", "updated_at"])
        action.status = ServerActionStatus.SUCCEEDED
        action.reason = ""
        action.new_password = ""
        action.finished_at = timezone.now()
        action.save(update_fields=["status", "reason", "new_password", "finished_at"])
        server_event_record(
            server=server,
            kind=ServerEventKind.PASSWORD_RESET,
            message=f"A new login password was set for {server.ssh_username}.",
        )
