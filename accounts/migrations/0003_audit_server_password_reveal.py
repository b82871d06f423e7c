from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_audit_append_only"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("signup", "Signed up"),
                    ("login", "Logged in"),
                    ("login_failed", "Failed login"),
                    ("logout", "Logged out"),
                    ("lockout", "Locked out"),
                    ("password_change", "Changed password"),
                    ("password_reset", "Reset password"),
                    ("email_change", "Changed email"),
                    ("email_confirm", "Confirmed email"),
                    ("mfa_enable", "Turned on two-factor"),
                    ("mfa_disable", "Turned off two-factor"),
                    ("recovery_codes", "Regenerated recovery codes"),
                    ("payment_refund", "Refunded a payment"),
                    ("staff_action", "Staff action"),
                    ("server_password_reveal", "Revealed a server password"),
                ],
                max_length=32,
            ),
        ),
        migrations.RemoveConstraint(
            model_name="auditevent",
            name="accounts_auditevent_action_valid",
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "action__in",
                        [
                            "signup",
                            "login",
                            "login_failed",
                            "logout",
                            "lockout",
                            "password_change",
                            "password_reset",
                            "email_change",
                            "email_confirm",
                            "mfa_enable",
                            "mfa_disable",
                            "recovery_codes",
                            "payment_refund",
                            "staff_action",
                            "server_password_reveal",
                        ],
                    )
                ),
                name="accounts_auditevent_action_valid",
            ),
        ),
    ]
