"""Tenant isolation in the database: PostgreSQL row-level security behind every customer
query, so a view or selector that forgets its owner filter shows nothing instead of
another customer's rows.

Every tenant table (rows a customer owns, see `manage.py check_rls`) has one policy,
created by `rls_enable_sql`: a row is visible and writable when the connection's
`app.scope` is not `customer`, or when its owner is the connection's `app.user_id`.

- `TenantScopeMiddleware` sets the scope of every web request right after
  authentication: `customer` with the user's id (none for an anonymous visitor, who so
  sees no tenant row), or `staff` for staff in the admin. As the request ends the
  process forgets it (the middleware's `finally`) and the connection loses it: the
  pool's `connection_reset` (RESET ALL) as Django hands the connection back, or, for a
  connection that outlives the request, `_scope_cleared_as_the_request_finishes`.
- Jobs, management commands and migrations set nothing: they act for the system and
  see every row.
- Code that acts for the system inside a request says so with `system_scope()`.

This is defence in depth against filtering bugs, not against SQL injection: whoever can
run SQL as the app role can change its own settings.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.signals import request_finished
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from psycopg.pq import TransactionStatus

logger = logging.getLogger(__name__)

SCOPE_SETTING = "app.scope"
USER_SETTING = "app.user_id"
CUSTOMER = "customer"
STAFF = "staff"
SYSTEM = "system"
ADMIN_PREFIX = "/admin/"
# What scoping adds to a request's queries in the tests: the set as it starts and the
# clear as it finishes (a test's connection outlives its request). In production the
# pool's reset clears a pooled connection instead: one round trip, not two.
SCOPE_QUERIES = 2
# The probes answer for the process, never for a customer, and /healthz must not touch
# the database at all.
UNSCOPED_PATHS = frozenset({"/healthz", "/readyz"})

# The policy's condition. `current_setting(..., true)` is NULL or '' where nothing was
# set (a job, a command, a migration): not `customer`, so unrestricted. The owner is
# compared as a bigint so the planner can use the (user_id, ...) indexes.
OWNER_IS_CURRENT_USER = "{column} = NULLIF(current_setting('app.user_id', true), '')::bigint"
NOT_CUSTOMER_SCOPE = "current_setting('app.scope', true) IS DISTINCT FROM 'customer'"
POLICY_NAME = "tenant_isolation"


@dataclass(frozen=True)
class Scope:
    name: str
    user_id: int | None = None


def rls_enable_sql(table: str, *, owner: str = "user_id", parent: tuple | None = None) -> str:
    """The statements that put `table` behind the tenant policy. The owner is `table`'s
    own `owner` column, or with `parent=(column, parent_table, parent_owner)` the owner of
    the parent row that `column` points to: an uncorrelated IN, which PostgreSQL runs once
    per query as a hashed set of the customer's parent ids (measured faster than a
    correlated EXISTS per row; see the README). The migrations call this: change its
    output only together with a migration that creates the policies again."""
    if parent is None:
        owned = OWNER_IS_CURRENT_USER.format(column=owner)
    else:
        column, parent_table, parent_owner = parent
        parent_owned = OWNER_IS_CURRENT_USER.format(column=parent_owner)
        # Names from the migrations, never from input.
        owned = f"{column} IN (SELECT id FROM {parent_table} WHERE {parent_owned})"  # noqa: S608
    condition = f"{NOT_CUSTOMER_SCOPE} OR {owned}"
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY {POLICY_NAME} ON {table} USING ({condition}) WITH CHECK ({condition});"
    )


def rls_disable_sql(table: str) -> str:
    return (
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table};\n"
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
    )


def scope_apply(scope: Scope | None, alias: str = DEFAULT_DB_ALIAS) -> None:
    """Put `scope` (None: none) on the connection in one round trip, and remember it on
    Django's connection object so a connection opened later in the request gets it too."""
    connection = connections[alias]
    user_id = "" if scope is None or scope.user_id is None else str(scope.user_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, %s, false), set_config(%s, %s, false)",
            [SCOPE_SETTING, scope.name if scope else "", USER_SETTING, user_id],
        )
    connection.tenant_scope = scope


def current_scope(alias: str = DEFAULT_DB_ALIAS) -> Scope | None:
    return getattr(connections[alias], "tenant_scope", None)


def scope_sees(user_id: int | None) -> bool:
    """Whether the connection's scope may read and write `user_id`'s rows already."""
    scope = current_scope()
    return (
        scope is None
        or scope.name != CUSTOMER
        or (user_id is not None and scope.user_id == user_id)
    )


@receiver(connection_created)
def _scope_follows_the_connection(sender, connection, **kwargs):
    """Django takes a new connection from the pool if it lost its own mid-request: the
    request's scope goes with it, or that request would run unrestricted."""
    scope = getattr(connection, "tenant_scope", None)
    if scope is not None:
        scope_apply(scope, connection.alias)


@contextmanager
def system_scope():
    """Inside a request, act for the system: every tenant row is visible and writable
    until the block ends, then the request's scope is back. Outside a request (a job, a
    command) there is no scope, and in the admin staff see every row already: then this
    costs nothing. Every use says why."""
    previous = current_scope()
    if previous is None or previous.name != CUSTOMER:
        yield  # unscoped, staff or already the system's: every row is visible already
        return
    scope_apply(Scope(SYSTEM))
    try:
        yield
    finally:
        connection = connections[DEFAULT_DB_ALIAS]
        raw = connection.connection
        if raw is not None and raw.info.transaction_status == TransactionStatus.INERROR:
            # The rollback that must follow undoes our set_config too (settings are
            # transactional), so only the remembered scope is put back.
            connection.tenant_scope = previous
        else:
            scope_apply(previous)


def request_scope(request) -> Scope:
    user = request.user
    if not user.is_authenticated:
        return Scope(CUSTOMER)
    if user.is_staff and request.path.startswith(ADMIN_PREFIX):
        return Scope(STAFF, user.pk)
    return Scope(CUSTOMER, user.pk)


class TenantScopeMiddleware:
    """Scopes the request's database connection to its user (see the module's text).
    With TENANT_ISOLATION off nothing is set: the comparison the benchmarks run."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.TENANT_ISOLATION or request.path in UNSCOPED_PATHS:
            return self.get_response(request)
        request.tenant_scoped = True
        scope_apply(request_scope(request))
        try:
            return self.get_response(request)
        finally:
            # Nothing in this process acts for the request's user any more. The
            # connection's own settings are cleared as the request finishes, below.
            connection = connections[DEFAULT_DB_ALIAS]
            connection.tenant_scope = None
            connection.tenant_clear_due = True


@receiver(request_finished)
def _scope_cleared_as_the_request_finishes(sender, **kwargs):
    """The request's settings leave the connection as the request finishes. A pooled
    connection with CONN_MAX_AGE=0 is handed back here, as Django's own
    close_old_connections would next (whichever of the two runs first): the pool's reset
    clears it (RESET ALL), so this costs no round trip. A connection that outlives the
    request (in a transaction, as in a test, or kept by CONN_MAX_AGE > 0) is cleared."""
    connection = connections[DEFAULT_DB_ALIAS]
    if not getattr(connection, "tenant_clear_due", False):
        return
    connection.tenant_clear_due = False
    if connection.connection is None:
        return  # closed: gone back to the pool (reset) or ended with its settings
    handed_back = (
        connection.pool is not None
        and connection.settings_dict["CONN_MAX_AGE"] == 0
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )
    try:
        if handed_back:
            connection.close()
        else:
            scope_apply(None)
    except DatabaseError:
        # A broken connection (the database went away): the answer stands, and the
        # pool's reset fails on it too and throws it away.
        logger.warning("Could not clear the tenant scope", exc_info=True)


@receiver(user_logged_in)
def _scope_follows_login(sender, request, user, **kwargs):
    """A login changes the request's user mid-request (allauth's login, signup and
    two-factor steps): the rest of that request is the new user's."""
    if request is not None and getattr(request, "tenant_scoped", False):
        scope_apply(request_scope(request))


@receiver(user_logged_out)
def _scope_follows_logout(sender, request, user, **kwargs):
    if request is not None and getattr(request, "tenant_scoped", False):
        scope_apply(Scope(CUSTOMER))


def connection_reset(conn) -> None:
    """psycopg_pool's `reset`, as a connection goes back to the pool: whatever the
    request set on it (the tenant scope above all) is gone before the next one takes it.
    RESET ALL also undoes the time zone Django set when the connection was opened (the
    pool's `configure` runs once per connection), so Django sets it again."""
    conn.execute("RESET ALL")
    connections[DEFAULT_DB_ALIAS]._configure_connection(conn)
    if not conn.autocommit:
        conn.commit()
