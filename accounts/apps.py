from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Users and audit trail"

    def ready(self):
        from accounts import audit_signals, middleware  # noqa: F401  (connect signal receivers)
