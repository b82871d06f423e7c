"""The `ask` endpoint each server's Caddy calls before it gets a certificate for a name
(on-demand TLS): 200 when the name is attached to that server and verified, 404 for
anything else, from one indexed query and no session (around it only the tenant scope's
set_config round trips), so a flood of handshakes for random names costs the panel next
to nothing."""

from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.http import require_GET

from hosting import tenant
from servers.selectors import tls_domain_allowed


@require_GET
def tls_ask(request, token):
    # Caddy asks for a server, proven by that server's token, not for a customer: only
    # the yes or no leaves this block.
    with tenant.system_scope():
        allowed = tls_domain_allowed(token=token, domain=request.GET.get("domain", ""))
    if allowed:
        return HttpResponse("ok\n", content_type="text/plain")
    # Plain, not the site's 404 page: Caddy reads the status only.
    return HttpResponseNotFound("no\n", content_type="text/plain")
