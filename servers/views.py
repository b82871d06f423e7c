from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing.selectors import active_plans
from servers.selectors import dashboard_for, server_page_for


@login_required
def dashboard(request):
    context = dashboard_for(request.user)
    if context["server"] is None:
        context["plans"] = active_plans()
    return render(request, "servers/dashboard.html", context)


@login_required
def server_detail(request, server_uuid):
    return render(request, "servers/detail.html", server_page_for(request.user, server_uuid))


@login_required
def server_status(request, server_uuid):
    """The status and timeline partial the server page polls while the server is built."""
    return render(request, "servers/_status.html", server_page_for(request.user, server_uuid))
