"""Row-level security on every tenant table (hosting.tenant): one policy each, which a
connection in scope `customer` passes only for its own user's rows. Tables whose owner
is their parent's (a server's events, a deployment's log lines) ask the parent."""

from django.db import migrations

from hosting.tenant import rls_disable_sql, rls_enable_sql

# table -> its owner column, or (column, parent table, the parent's owner column)
OWNED = {
    "servers_server": "user_id",
    "servers_deployment": "user_id",
    "servers_domain": "user_id",
    "billing_payment": "user_id",
    "billing_subscription": "user_id",
    "support_ticket": "user_id",
    "accounts_auditevent": "actor_id",
    "accounts_user_groups": "user_id",
    "accounts_user_user_permissions": "user_id",
    "django_admin_log": "user_id",
}
CHILDREN = {
    "servers_serverevent": ("server_id", "servers_server", "user_id"),
    "servers_serveraction": ("server_id", "servers_server", "user_id"),
    "servers_deploymentlogline": ("deployment_id", "servers_deployment", "user_id"),
    "support_ticketmessage": ("ticket_id", "support_ticket", "user_id"),
    "billing_stripeevent": ("payment_id", "billing_payment", "user_id"),
}


def _operations():
    for table, owner in OWNED.items():
        yield migrations.RunSQL(rls_enable_sql(table, owner=owner), rls_disable_sql(table))
    for table, parent in CHILDREN.items():
        yield migrations.RunSQL(rls_enable_sql(table, parent=parent), rls_disable_sql(table))


class Migration(migrations.Migration):
    dependencies = [
        ("hosting", "0002_backup_runs"),
        ("accounts", "0006_payment_overdue_banner"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("billing", "0005_simulated_renewals"),
        ("servers", "0007_subscriptions"),
        ("support", "0003_ticket_mail_search"),
    ]

    operations = list(_operations())
