"""A test-only urlconf: the site's own URLs and error handlers, plus one view that fails."""

from django.urls import path

from hosting import urls as site_urls


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom/", boom), *site_urls.urlpatterns]

handler404 = site_urls.handler404
handler500 = site_urls.handler500
