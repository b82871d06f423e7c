"""Fingerprints of the database's rows, all tables in one query, taken outside any request
(so no tenant scope applies and every row is seen). Two fingerprints that differ name the
tables whose rows changed.

- `fingerprint`, cheap enough to take around every one of thousands of requests: per
  table, the row count and the newest row version's transaction id (`xmin`). An insert
  or an update writes a row version with a newer id, a delete lowers the count: any
  write shows, even one that rewrites a row with the values it had.
- `owned_fingerprint`, one customer's rows, few: their count and an md5 of their text."""

from __future__ import annotations

from django.apps import apps
from django.db import connection

from hosting.database.rls import tenant_tables

# Tables left out, each with why a refused request may change it.
NOT_WATCHED = {
    # Each visitor's own session (CSRF token, messages, allauth's state for the next
    # step): it changes on many answers, refusals included, and is nobody else's row.
    "django_session": "the visitor's own session",
}
# Rows left out of a watched table: a refused login is recorded on purpose.
NOT_WATCHED_ROWS = {
    "accounts_auditevent": "action NOT IN ('login_failed', 'lockout')",
}
# Rows of the simulated Stripe that stand for a customer's checkout and subscription,
# found by the customer's address as Stripe would.
SIMULATOR_ROWS = {
    "billing_simulatedcheckoutsession": "lower(customer_email) = lower(%(email)s)",
    "billing_simulatedinvoice": (
        "session_id IN (SELECT id FROM billing_simulatedcheckoutsession "
        "WHERE lower(customer_email) = lower(%(email)s))"
    ),
}


def watched_tables() -> dict[str, str]:
    """Every table of an installed model (many-to-many ones too) but NOT_WATCHED, with its
    primary key column."""
    tables = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or meta.db_table in NOT_WATCHED:
            continue
        tables.setdefault(meta.db_table, meta.pk.column)
    return dict(sorted(tables.items()))


def fingerprint() -> dict[str, str]:
    """{table: "<rows>:<newest xmin>"} for every watched table, in one round trip."""
    template = (
        "SELECT '{table}', count(*) || ':' || coalesce(max(t.xmin::text::bigint), 0) "
        "FROM {table} t WHERE {condition}"
    )
    return _rows(
        " UNION ALL ".join(
            template.format(table=table, condition=NOT_WATCHED_ROWS.get(table, "true"))
            for table in watched_tables()
        ),
        {},
    )


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The tables whose rows differ between two fingerprints."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def owned_fingerprint(user) -> dict[str, str]:
    """{table: "<rows>:<md5>"} of the rows one customer owns: their user row, their rows in
    every tenant table (those row-level security protects and the exempt ones) and their
    simulated Stripe objects, so a change to any of them, by anyone, shows. One round
    trip."""
    user_table = apps.get_model("accounts", "User")._meta.db_table
    owners = tenant_tables()
    pks = watched_tables()
    conditions = {
        user_table: "id = %(user)s",
        **{table: _owner_condition(table, owners) for table in owners},
        **SIMULATOR_ROWS,
    }
    return _hashes(
        [(table, pks[table], condition) for table, condition in conditions.items()],
        {"user": user.pk, "email": user.email},
    )


def _owner_condition(table: str, owners: dict[str, str]) -> str:
    """SQL that is true for the rows of `table` a customer owns (`%(user)s`), following
    tenant_tables()' description of its owner: a column of its own ("user_id"), or a link
    to a parent table whose owner is found the same way ("deployment_id → ...")."""
    column, _, parent = (part.strip() for part in owners[table].partition("→"))
    if not parent:
        return f"{column} = %(user)s"
    inner = _owner_condition(parent, owners)
    return f"{column} IN (SELECT id FROM {parent} WHERE {inner})"  # noqa: S608 (names from models)


def _hashes(selections: list[tuple[str, str, str]], params: dict) -> dict[str, str]:
    """One query: for each (table, primary key, condition) the matching rows' count and
    md5. Table and column names come from the models, never from input."""
    template = (
        "SELECT '{table}', count(*) || ':' || "
        "md5(coalesce(string_agg(t::text, '|' ORDER BY t.{pk}), '')) "
        "FROM {table} t WHERE {condition}"
    )
    sql = " UNION ALL ".join(
        template.format(table=table, pk=pk, condition=condition)
        for table, pk, condition in selections
    )
    return _rows(sql, params)


def _rows(sql: str, params: dict) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or None)
        return dict(cursor.fetchall())
