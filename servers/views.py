from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing.selectors import active_plans
from servers.selectors import dashboard_for


@login_required
def dashboard(request):
    context = dashboard_for(request.user)
    if context["server"] is None:
        context["plans"] = active_plans()
    return render(request, "servers/dashboard.html", context)
