"""Deployments: the form and history (`/servers/<uuid>/deployments/`), one deployment with
its live log (polled by htmx for the lines after the last one shown), cancel and
redeploy. Another customer's server or deployment is a 404 on every URL."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servers import deployments as services
from servers import selectors
from servers.forms import DeploymentForm


def _to_deployment(deployment):
    return redirect("servers:deployment", deployment.server.uuid, deployment.uuid)


@login_required
@require_http_methods(["GET", "POST"])
def deployment_list(request, server_uuid):
    context = selectors.deployments_page_for(request.user, server_uuid)
    server = context["server"]
    form = DeploymentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deployment = services.deployment_create(server_id=server.pk, **form.cleaned_data)
        except services.DeploymentRefused as refusal:
            messages.error(request, str(refusal))
        else:
            deployment.server = server
            return _to_deployment(deployment)
    status = 400 if request.method == "POST" else 200
    return render(request, "servers/deployments.html", {**context, "form": form}, status=status)


@login_required
@require_GET
def deployment_detail(request, server_uuid, deployment_uuid):
    context = selectors.deployment_page_for(request.user, server_uuid, deployment_uuid)
    return render(request, "servers/deployment.html", context)


@login_required
@require_GET
def deployment_log(request, server_uuid, deployment_uuid):
    """The lines after `?after=N` (appended to the log out of band), the status block
    when it changed since `?status=`, and the next poll unless the deployment ended."""
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    context = selectors.deployment_log_for(request.user, server_uuid, deployment_uuid, after)
    context["status_changed"] = request.GET.get("status") != context["deployment"].status
    return render(request, "servers/_deployment_log.html", context)


@login_required
@require_POST
def deployment_cancel(request, server_uuid, deployment_uuid):
    deployment = selectors.deployment_for(request.user, server_uuid, deployment_uuid)
    try:
        cancelled = services.deployment_cancel(deployment_id=deployment.pk)
    except services.DeploymentRefused as refusal:
        messages.error(request, str(refusal))
    else:
        if cancelled.status == cancelled.Status.FAILED:
            messages.success(request, "Deployment cancelled.")
        else:
            messages.info(request, "Cancelling: the deployment stops in a moment.")
    return _to_deployment(deployment)


@login_required
@require_POST
def deployment_redeploy(request, server_uuid, deployment_uuid):
    earlier = selectors.deployment_for(request.user, server_uuid, deployment_uuid)
    try:
        deployment = services.deployment_redeploy(deployment_id=earlier.pk)
    except services.DeploymentRefused as refusal:
        messages.error(request, str(refusal))
        return _to_deployment(earlier)
    deployment.server = earlier.server
    return _to_deployment(deployment)
