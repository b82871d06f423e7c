"""The site's URLs plus the framework floor: a view that does nothing, behind the same
middleware and the same login as every customer page, so a page's throughput can be read
as a share of what Django, the session, the user and the tenant scope cost by
themselves."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import path

from bench.harness import FLOOR
from hosting.urls import urlpatterns as site


@login_required
def floor(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path(FLOOR.strip("/") + "/", floor), *site]

handler400 = "hosting.views.bad_request"
handler403 = "hosting.views.permission_denied"
handler404 = "hosting.views.page_not_found"
handler500 = "hosting.views.server_error"
