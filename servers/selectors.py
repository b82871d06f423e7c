from servers.models import ENDED_SERVER_STATUSES, Deployment, Domain, Server


def dashboard_for(user) -> dict:
    """The customer's current server with its recent deployments and domains: at most
    three queries, whatever the numbers."""
    server = (
        Server.objects.filter(user=user)
        .exclude(status__in=ENDED_SERVER_STATUSES)
        .select_related("plan")
        .first()
    )
    if server is None:
        return {"server": None, "deployments": [], "domains": []}
    deployments = list(Deployment.objects.filter(server=server).order_by("-created_at")[:5])
    domains = list(Domain.objects.filter(server=server).order_by("name"))
    return {"server": server, "deployments": deployments, "domains": domains}
