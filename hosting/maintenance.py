"""While PostgreSQL cannot be reached, every page answers a static 503 "maintenance" page
within DB_CONNECT_TIMEOUT instead of a traceback or a hang, and the Stripe webhook's 503
makes Stripe deliver again later. Nothing is remembered between requests: the first
request after the database returns is served normally."""

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import HttpResponse
from django.template import loader

# Each probe answers for itself: /healthz never touches the database, /readyz says why.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
DATABASE_DOWN = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30


def maintenance_response() -> HttpResponse:
    """The maintenance page, rendered without a request: no context processor runs, so
    nothing reads the session, the user or the database."""
    response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Takes the request's connection first (from the pool, which the request would use
    anyway), so a database that is down is found here, before any middleware or view
    half-runs. A database lost later in the request is caught by `server_error`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path not in PROBE_PATHS:
            try:
                connections[DEFAULT_DB_ALIAS].ensure_connection()
            except DATABASE_DOWN:
                return maintenance_response()
        return self.get_response(request)
