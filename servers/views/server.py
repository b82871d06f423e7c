from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from billing.selectors import active_plans
from servers import actions
from servers.models import ServerActionKind
from servers.selectors import dashboard_for, server_owned_by, server_page_for


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
    """The status and timeline partial the server page polls while the server is built or
    an action runs."""
    return render(request, "servers/_status.html", server_page_for(request.user, server_uuid))


POWER_DONE = {
    ServerActionKind.START: "Starting the server",
    ServerActionKind.STOP: "Shutting the server down",
    ServerActionKind.REBOOT: "Rebooting the server",
}


def _request_action(request, server, kind: str, done: str):
    try:
        actions.server_action_request(server_id=server.pk, kind=kind, actor=request.user)
    except actions.ActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"{done}; this page updates when it is done.")
    return redirect("servers:detail", server_uuid=server.uuid)


@login_required
def server_power(request, server_uuid):
    """POST action=start|stop|reboot. Whose server it is comes first: anyone else's is a
    404 whatever the method."""
    server = server_owned_by(request.user, server_uuid)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    kind = request.POST.get("action", "")
    if kind not in actions.POWER_KINDS:
        messages.error(request, "Choose Start, Stop or Reboot.")
        return redirect("servers:detail", server_uuid=server.uuid)
    return _request_action(request, server, kind, POWER_DONE[ServerActionKind(kind)])


@login_required
def password_reveal(request, server_uuid):
    """The login password, once, on a page of its own, after allauth has asked for the
    account's password (or a TOTP code) again; every reveal is audited."""
    server = server_owned_by(request.user, server_uuid)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return _password_reveal(request, server)


# Applied after the ownership check, so another customer's server is a 404 and not a
# request to reauthenticate. allauth's middleware keeps the POST and replays it (through
# the view above) once the customer has confirmed who they are.
@reauthentication_required
@never_cache
def _password_reveal(request, server):
    try:
        password = actions.server_password_reveal(
            server_id=server.pk, actor=request.user, request=request
        )
    except actions.ActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("servers:detail", server_uuid=server.uuid)
    # never_cache: no-store, so the page is not kept by the browser or a proxy.
    context = {"server": server, "password": password, "ssh_port": settings.SERVER_SSH_PORT}
    return render(request, "servers/password.html", context)


@login_required
def password_reset(request, server_uuid):
    """A new login password, set on the server by a job; behind reauthentication too."""
    server = server_owned_by(request.user, server_uuid)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return _password_reset(request, server)


@reauthentication_required
def _password_reset(request, server):
    return _request_action(
        request, server, ServerActionKind.PASSWORD_RESET, "Setting a new password on the server"
    )
