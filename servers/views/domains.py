"""Custom domains: the add form and the list (`/servers/<uuid>/domains/`), the list alone
for htmx to poll while a check is under way, "Check now", and removal behind a
confirmation page. Every URL looks the server (and the domain) up as the customer's
first, so another customer's server or domain is a 404 whatever the method."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render

from servers import domains as services
from servers import selectors
from servers.forms import DomainForm


def _to_domains(server):
    return redirect("servers:domains", server_uuid=server.uuid)


@login_required
def domain_list(request, server_uuid):
    """GET: the form and the list. POST name=...: attach the domain; a refusal is shown
    on the form (400) and nothing is stored."""
    context = selectors.domains_page_for(request.user, server_uuid)
    server = context["server"]
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    form = DomainForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            domain = services.domain_add(server_id=server.pk, name=form.cleaned_data["name"])
        except services.DomainRefused as refusal:
            form.add_error("name", str(refusal))
        else:
            messages.success(
                request,
                f"{domain.name} added. Create its DNS record below; we check it by ourselves.",
            )
            return _to_domains(server)
    status = 400 if request.method == "POST" else 200
    return render(request, "servers/domains.html", {**context, "form": form}, status=status)


@login_required
def domain_list_partial(request, server_uuid):
    """The list alone: what the page polls every few seconds while a check is pending."""
    context = selectors.domains_page_for(request.user, server_uuid)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    return render(request, "servers/_domain_list.html", context)


@login_required
def domain_check(request, server_uuid, domain_uuid):
    """POST: check again at once (DNS while not verified, else HTTPS)."""
    domain = selectors.domain_for_customer(request.user, server_uuid, domain_uuid)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        services.domain_check_now(domain_id=domain.pk)
    except services.DomainRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.info(request, f"Checking {domain.name} again now.")
    return _to_domains(domain.server)


@login_required
def domain_remove(request, server_uuid, domain_uuid):
    """GET: ask first. POST: detach the domain."""
    domain = selectors.domain_for_customer(request.user, server_uuid, domain_uuid)
    if request.method == "POST":
        try:
            services.domain_remove(domain_id=domain.pk)
        except services.DomainRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(request, f"{domain.name} removed.")
        return _to_domains(domain.server)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "POST"])
    context = {"server": domain.server, "removing": domain}
    return render(request, "servers/domains.html", context)
