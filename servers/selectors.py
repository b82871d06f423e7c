from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404

from billing.models import Payment, Plan
from hosting.db import instances, json_document
from hosting.links import uuid_link
from servers.actions import PROGRESS_LABELS
from servers.models import (
    ENDED_SERVER_STATUSES,
    Deployment,
    DeploymentLogLine,
    Domain,
    Server,
    ServerAction,
    ServerEvent,
    joined_server_secrets,
)

# The dashboard in one query: the customer's live server (the newest, as the model's
# ordering has it) with its plan's name, its five latest deployments and its domains, and
# the newest server of any state for the empty dashboard. Only the columns shown.
DASHBOARD_SQL = """
WITH live AS (
    SELECT s.id, s.uuid, s.name, s.status, s.region, s.ip_address, p.name AS plan_name
    FROM servers_server s JOIN billing_plan p ON p.id = s.plan_id
    WHERE s.user_id = %(user)s AND s.status <> ALL(%(ended)s)
    ORDER BY s.created_at DESC, s.id DESC LIMIT 1
)
SELECT json_build_object(
    'server', (SELECT row_to_json(live) FROM live),
    'deployments', (
        SELECT coalesce(json_agg(d), '[]') FROM (
            SELECT id, git_url, branch, status, created_at FROM servers_deployment
            WHERE server_id = (SELECT id FROM live) ORDER BY created_at DESC, id DESC LIMIT 5
        ) d
    ),
    'domains', (
        SELECT coalesce(json_agg(m), '[]') FROM (
            SELECT id, name, verification_status, ssl_status, ssl_error FROM servers_domain
            WHERE server_id = (SELECT id FROM live) ORDER BY name
        ) m
    ),
    'last', (
        SELECT row_to_json(l) FROM (
            SELECT id, uuid, status, name FROM servers_server WHERE user_id = %(user)s
            ORDER BY created_at DESC, id DESC LIMIT 1
        ) l WHERE NOT EXISTS (SELECT FROM live)
    )
)::text
"""


def dashboard_for(user) -> dict:
    """The customer's current server with its recent deployments and domains: one query,
    whatever the numbers (DASHBOARD_SQL). Rows come as `.only()` model instances, so the
    templates read them as ever and no secret column is loaded or decrypted."""
    document = json_document(DASHBOARD_SQL, {"user": user.pk, "ended": ENDED_SERVER_STATUSES})
    if document["server"] is None:
        # The empty dashboard says so when the customer's last server could not be built.
        last = document["last"]
        failed = None
        if last is not None and last["status"] == Server.Status.FAILED:
            (failed,) = instances(Server, [last])
        return {"server": None, "deployments": [], "domains": [], "failed_server": failed}
    fields = document["server"]
    plan = Plan(name=fields.pop("plan_name"))
    (server,) = instances(Server, [fields])
    server.plan = plan
    return {
        "server": server,
        "deployments": instances(Deployment, document["deployments"]),
        "domains": instances(Domain, document["domains"]),
    }


# The server page (and its status partial) in one query: one of the customer's servers,
# the plan and payment facts it shows, the kind of the action in progress on it, and its
# timeline. No secret column is read: the password is not even loaded.
SERVER_PAGE_SQL = """
WITH server AS (
    SELECT id, uuid, name, status, region, ip_address, ssh_username, created_at, plan_id,
           payment_id
    FROM servers_server WHERE uuid = %(uuid)s AND user_id = %(user)s
)
SELECT json_build_object(
    'server', (SELECT row_to_json(server) FROM server),
    'plan', (
        SELECT row_to_json(p) FROM (
            SELECT id, name, vcpus, memory_mb, disk_gb FROM billing_plan
            WHERE id = (SELECT plan_id FROM server)
        ) p
    ),
    'payment', (
        SELECT row_to_json(p) FROM (
            SELECT id, amount_cents, currency, status FROM billing_payment
            WHERE id = (SELECT payment_id FROM server)
        ) p
    ),
    'open_action', (
        SELECT kind FROM servers_serveraction
        WHERE server_id = (SELECT id FROM server) AND status = %(in_progress)s LIMIT 1
    ),
    'events', (
        SELECT coalesce(json_agg(e), '[]') FROM (
            SELECT id, kind, message, created_at FROM servers_serverevent
            WHERE server_id = (SELECT id FROM server) ORDER BY created_at, id
        ) e
    )
)::text
"""


def server_page_for(user, server_uuid) -> dict:
    """One of the customer's servers (any state) with its timeline and the kind of the
    action in progress on it, if any: one query (SERVER_PAGE_SQL). Another customer's
    server is a 404, never a 403: its existence is not ours to tell."""
    document = json_document(
        SERVER_PAGE_SQL,
        {"uuid": server_uuid, "user": user.pk, "in_progress": ServerAction.Status.IN_PROGRESS},
    )
    if document["server"] is None:
        raise Http404("No such server.")
    (server,) = instances(Server, [document["server"]])
    (server.plan,) = instances(Plan, [document["plan"]])
    server.payment = instances(Payment, [document["payment"]])[0] if document["payment"] else None
    open_action = document["open_action"]
    return {
        "server": server,
        "events": instances(ServerEvent, document["events"]),
        "open_action": open_action,
        "progress_label": PROGRESS_LABELS.get(open_action, ""),
        "ssh_port": settings.SERVER_SSH_PORT,
    }


def server_owned_by(user, server_uuid) -> Server:
    """The customer's server for an action on it (one query), or a 404 for anyone else's."""
    return get_object_or_404(
        Server.objects.only("pk", "uuid", "status", "name", "ip_address", "ssh_username"),
        uuid=server_uuid,
        user=user,
    )


# -- deployments ------------------------------------------------------------------------

DEPLOYMENTS_SHOWN = 50
# The log page shows at most this many lines at first (the most recent ones).
LOG_LINES_SHOWN = 5000
_SERVER_SECRETS = joined_server_secrets("server")


# The deployments page in one query: one of the customer's servers and its latest
# deployments, without their logs or secret URLs.
DEPLOYMENTS_PAGE_SQL = """
WITH server AS (
    SELECT id, uuid, name, status, ip_address, ssh_username
    FROM servers_server WHERE uuid = %(server)s AND user_id = %(user)s
)
SELECT json_build_object(
    'server', (SELECT row_to_json(server) FROM server),
    'deployments', (
        SELECT coalesce(json_agg(d ORDER BY d.created_at DESC, d.id DESC), '[]') FROM (
            SELECT id, uuid, server_id, git_url, branch, subdirectory, "commit", status,
                   created_at, started_at, finished_at
            FROM servers_deployment WHERE server_id = (SELECT id FROM server)
            ORDER BY created_at DESC, id DESC LIMIT %(shown)s
        ) d
    )
)::text
"""


def deployments_page_for(user, server_uuid) -> dict:
    """The customer's server and its latest deployments (no logs): one query
    (DEPLOYMENTS_PAGE_SQL). A waiting deployment knows its place in the queue."""
    document = json_document(
        DEPLOYMENTS_PAGE_SQL,
        {"server": str(server_uuid), "user": user.pk, "shown": DEPLOYMENTS_SHOWN},
    )
    if document["server"] is None:
        raise Http404("No such server.")
    (server,) = instances(Server, [document["server"]])
    deployments = instances(Deployment, document["deployments"])
    ahead = 0
    for deployment in reversed(deployments):  # oldest first: the queue's order
        if deployment.status in (Deployment.Status.PENDING, Deployment.Status.IN_PROGRESS):
            deployment.queue_position = ahead
            ahead += 1
        links = (server.uuid, deployment.uuid)
        deployment.page_url = uuid_link("servers:deployment", *links)
        deployment.redeploy_url = uuid_link("servers:deployment_redeploy", *links)
    return {"server": server, "deployments": deployments}


def deployment_for(user, server_uuid, deployment_uuid) -> Deployment:
    """One of the customer's deployments with its server, in one query; another
    customer's (or one under another server's URL) is a 404."""
    return get_object_or_404(
        Deployment.objects.select_related("server").defer("git_url_secret", *_SERVER_SECRETS),
        uuid=deployment_uuid,
        server__uuid=server_uuid,
        server__user=user,
    )


def deployment_page_for(user, server_uuid, deployment_uuid) -> dict:
    """A deployment and the last LOG_LINES_SHOWN lines of its log: two queries."""
    deployment = deployment_for(user, server_uuid, deployment_uuid)
    lines = list(
        DeploymentLogLine.objects.filter(deployment=deployment)
        .order_by("-number")
        .only("number", "text")[:LOG_LINES_SHOWN]
    )[::-1]
    return {
        "server": deployment.server,
        "deployment": deployment,
        "lines": lines,
        "last_number": lines[-1].number if lines else 0,
        "earlier_lines": bool(lines) and lines[0].number > 1,
    }


# The log's polling in one query (it runs every second while a customer watches a
# deployment): one of the customer's deployments, what its status block and poller show
# of it and its server, and the lines after the last one the page has.
DEPLOYMENT_LOG_SQL = """
WITH deployment AS (
    SELECT d.id, d.uuid, d.status, d.failure_reason, d.git_url, d.branch, d.subdirectory,
           d."commit", d.cancel_requested_at, d.started_at, d.finished_at, d.server_id
    FROM servers_deployment d JOIN servers_server s ON s.id = d.server_id
    WHERE d.uuid = %(deployment)s AND s.uuid = %(server)s AND s.user_id = %(user)s
)
SELECT json_build_object(
    'deployment', (SELECT row_to_json(deployment) FROM deployment),
    'server', (
        SELECT row_to_json(s) FROM (
            SELECT id, uuid, status FROM servers_server
            WHERE id = (SELECT server_id FROM deployment)
        ) s
    ),
    'lines', (
        SELECT coalesce(json_agg(l ORDER BY l.number), '[]') FROM (
            SELECT number, text FROM servers_deploymentlogline
            WHERE deployment_id = (SELECT id FROM deployment) AND number > %(after)s
            ORDER BY number LIMIT %(limit)s
        ) l
    )
)::text
"""


def deployment_log_for(user, server_uuid, deployment_uuid, after: int) -> dict:
    """The lines after number `after`, for the page's polling: one query
    (DEPLOYMENT_LOG_SQL). Another customer's deployment is a 404."""
    document = json_document(
        DEPLOYMENT_LOG_SQL,
        {
            "deployment": str(deployment_uuid),
            "server": str(server_uuid),
            "user": user.pk,
            "after": after,
            "limit": LOG_LINES_SHOWN,
        },
    )
    if document["deployment"] is None:
        raise Http404("No such deployment.")
    (deployment,) = instances(Deployment, [document["deployment"]])
    (deployment.server,) = instances(Server, [document["server"]])
    lines = instances(DeploymentLogLine, document["lines"])
    return {
        "server": deployment.server,
        "deployment": deployment,
        "lines": lines,
        "last_number": lines[-1].number if lines else after,
    }


# -- domains ----------------------------------------------------------------------------


def tls_domain_allowed(*, token: str, domain: str) -> bool:
    """Whether the server whose Caddy holds `token` may get a certificate for `domain`: it
    is attached to that live server and verified. One query (the token's unique index,
    then the domain's (server, name) index)."""
    from servers.credentials import tls_token_hash

    name = domain.strip().rstrip(".").lower()
    if not token or not name or len(name) > 253 or len(token) > 128:
        return False
    return (
        Domain.objects.filter(
            server__tls_token_hash=tls_token_hash(token),
            name=name,
            verification_status=Domain.VerificationStatus.VERIFIED,
        )
        .exclude(server__status__in=ENDED_SERVER_STATUSES)
        .exists()
    )


def domain_is_pending(domain: Domain) -> bool:
    """A check is still to come by itself: DNS not settled yet, or HTTPS after it."""
    if domain.verification_status == Domain.VerificationStatus.PENDING:
        return True
    return (
        domain.verification_status == Domain.VerificationStatus.VERIFIED
        and domain.ssl_status == Domain.SSLStatus.PENDING
    )


def domains_page_for(user, server_uuid) -> dict:
    """The customer's server and its domains by name: two queries."""
    server = server_owned_by(user, server_uuid)
    domains = list(Domain.objects.filter(server=server).order_by("name"))
    return {
        "server": server,
        "domains": domains,
        "polling": any(domain_is_pending(domain) for domain in domains),
        "simulated": not settings.DIGITALOCEAN_TOKEN,  # as get_provider() decides
    }


def domain_for_customer(user, server_uuid, domain_uuid) -> Domain:
    """One of the customer's domains, under its own server's URL, with that server: one
    query; anything else is a 404."""
    return get_object_or_404(
        Domain.objects.select_related("server").defer(*_SERVER_SECRETS),
        uuid=domain_uuid,
        server__uuid=server_uuid,
        server__user=user,
    )
