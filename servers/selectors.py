from django.shortcuts import get_object_or_404

from servers.models import ENDED_SERVER_STATUSES, Deployment, Domain, Server, ServerEvent


def dashboard_for(user) -> dict:
    """The customer's current server with its recent deployments and domains: at most
    three queries, whatever the numbers (two when there is no live server)."""
    server = (
        Server.objects.filter(user=user)
        .exclude(status__in=ENDED_SERVER_STATUSES)
        .select_related("plan")
        .first()
    )
    if server is None:
        # The empty dashboard says so when the customer's last server could not be built.
        last = Server.objects.filter(user=user).only("uuid", "status", "name").first()
        failed = last if last is not None and last.status == Server.Status.FAILED else None
        return {"server": None, "deployments": [], "domains": [], "failed_server": failed}
    deployments = list(Deployment.objects.filter(server=server).order_by("-created_at")[:5])
    domains = list(Domain.objects.filter(server=server).order_by("name"))
    return {"server": server, "deployments": deployments, "domains": domains}


def server_page_for(user, server_uuid) -> dict:
    """One of the customer's servers (any state) with its timeline: two queries. Another
    customer's server is a 404, never a 403: its existence is not ours to tell."""
    server = get_object_or_404(
        Server.objects.select_related("plan", "payment").defer(
            "ssh_password", "ssh_host_private_key"
        ),
        uuid=server_uuid,
        user=user,
    )
    events = list(ServerEvent.objects.filter(server=server).order_by("created_at", "id"))
    return {"server": server, "events": events}
