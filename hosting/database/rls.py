"""Which tables are tenant tables, and whether PostgreSQL protects each one: the facts
behind `manage.py check_rls` and the database page's row-level security section.

A tenant table is one with a foreign key to the user table, or to another tenant table
(a deployment's log lines, a ticket's messages): its rows belong to a customer. Each
must have row-level security enabled and forced, with the policy that
`hosting.tenant.rls_enable_sql` creates, unless it is exempt below, with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model

from hosting.tenant import POLICY_NAME

# Tables allauth must read before anyone is signed in, so a policy keyed on the signed-in
# user would break signing in. They hold no hosting data: addresses, one-time keys and
# two-factor secrets, which only allauth's own views touch.
EXEMPT = {
    "account_emailaddress": "login, signup and password reset find the account by address",
    "account_emailconfirmation": "a confirmation link works for whoever opens it",
    "mfa_authenticator": "the two-factor step reads them before the login completes",
}

STATE_SQL = """
SELECT c.relname AS table,
       c.relrowsecurity AS enabled,
       c.relforcerowsecurity AS forced,
       p.polname IS NOT NULL AS has_policy,
       COALESCE(p.polcmd = '*' AND p.polpermissive
                AND pg_get_expr(p.polqual, p.polrelid) LIKE '%%app.scope%%'
                AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%%app.scope%%', false)
           AS policy_complete
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = %s
WHERE c.relname = ANY(%s)
"""

ROLE_SQL = """
SELECT current_user AS role, rolsuper AS superuser, rolbypassrls AS bypass
FROM pg_roles WHERE rolname = current_user
"""


@dataclass
class TableState:
    table: str
    owner: str  # how a row's owner is found, e.g. "user_id" or "deployment_id → servers_deployment"
    enabled: bool = False
    forced: bool = False
    has_policy: bool = False
    policy_complete: bool = False
    exists: bool = False

    @property
    def problem(self) -> str:
        if not self.exists:
            return "table missing (run migrate)"
        missing = [
            word
            for word, present in (
                ("not enabled", self.enabled),
                ("not forced", self.forced),
                (f"no {POLICY_NAME} policy", self.has_policy),
            )
            if not present
        ]
        if self.has_policy and not self.policy_complete:
            missing.append(f"{POLICY_NAME} is not the tenant policy")
        return ", ".join(missing)


def tenant_tables() -> dict[str, str]:
    """Every tenant table (exempt ones included) and how its owner is found."""
    user_table = get_user_model()._meta.db_table
    models = [m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy]
    found: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for model in models:
            table = model._meta.db_table
            if table in found or table == user_table:
                continue
            links = {
                field.column: field.related_model._meta.db_table
                for field in model._meta.concrete_fields
                if field.is_relation
            }
            direct = [column for column, target in links.items() if target == user_table]
            parents = [
                f"{column} → {target}" for column, target in links.items() if target in found
            ]
            if direct or parents:
                # Its own user_id names the owner; else its parent's does (a server
                # action's `requested_by` may be staff); else its only link to a user.
                found[table] = "user_id" if "user_id" in direct else (parents or direct)[0]
                grew = True
    return dict(sorted(found.items()))


def table_states(connection) -> list[TableState]:
    """Each tenant table that is not exempt, with what the catalog says of it. One query."""
    states = {
        table: TableState(table, owner)
        for table, owner in tenant_tables().items()
        if table not in EXEMPT
    }
    with connection.cursor() as cursor:
        cursor.execute(STATE_SQL, [POLICY_NAME, list(states)])
        for table, enabled, forced, has_policy, complete in cursor.fetchall():
            state = states[table]
            state.exists = True
            state.enabled, state.forced = enabled, forced
            state.has_policy, state.policy_complete = has_policy, complete
    return list(states.values())


def role_bypasses(connection) -> str:
    """Why the connection's role is not bound by row-level security, or ""."""
    with connection.cursor() as cursor:
        cursor.execute(ROLE_SQL)
        role, superuser, bypass = cursor.fetchone()
    if superuser:
        return f"{role} is a superuser, which row-level security never binds"
    if bypass:
        return f"{role} has BYPASSRLS"
    return ""
