"""Writes account events from Django's and allauth's signals to the audit trail.

Failed and refused logins are recorded by accounts.adapter, which sees the attempt.
"""

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver

from accounts.models import AuditAction
from accounts.services import audit_event_record


@receiver(account_signals.user_signed_up)
def on_signed_up(sender, request, user, **kwargs):
    audit_event_record(action=AuditAction.SIGNUP, actor=user, request=request)


@receiver(auth_signals.user_logged_in)
def on_logged_in(sender, request, user, **kwargs):
    audit_event_record(action=AuditAction.LOGIN, actor=user, request=request)


@receiver(auth_signals.user_logged_out)
def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_event_record(action=AuditAction.LOGOUT, actor=user, request=request)


@receiver(account_signals.password_changed)
@receiver(account_signals.password_set)
def on_password_changed(sender, request, user, **kwargs):
    audit_event_record(action=AuditAction.PASSWORD_CHANGE, actor=user, request=request)


@receiver(account_signals.password_reset)
def on_password_reset(sender, request, user, **kwargs):
    audit_event_record(action=AuditAction.PASSWORD_RESET, actor=user, request=request)


@receiver(account_signals.email_confirmed)
def on_email_confirmed(sender, request, email_address, **kwargs):
    audit_event_record(
        action=AuditAction.EMAIL_CONFIRM,
        actor=email_address.user,
        request=request,
        metadata={"email": email_address.email},
    )


@receiver(account_signals.email_changed)
def on_email_changed(sender, request, user, from_email_address, to_email_address, **kwargs):
    # allauth (ACCOUNT_CHANGE_EMAIL) also sends this when a user's first address is
    # confirmed, from no address at all: that is the signup address being confirmed,
    # recorded by on_email_confirmed, not a change.
    if from_email_address is None:
        return
    audit_event_record(
        action=AuditAction.EMAIL_CHANGE,
        actor=user,
        request=request,
        metadata={
            "from": from_email_address.email,
            "to": to_email_address.email,
        },
    )


# Recovery codes come and go with TOTP; the TOTP authenticator is what turns
# two-factor on and off.
@receiver(mfa_signals.authenticator_added)
def on_authenticator_added(sender, request, user, authenticator, **kwargs):
    if authenticator.type == "totp":
        audit_event_record(action=AuditAction.MFA_ENABLE, actor=user, request=request)


@receiver(mfa_signals.authenticator_removed)
def on_authenticator_removed(sender, request, user, authenticator, **kwargs):
    if authenticator.type == "totp":
        audit_event_record(action=AuditAction.MFA_DISABLE, actor=user, request=request)


@receiver(mfa_signals.authenticator_reset)
def on_authenticator_reset(sender, request, user, authenticator, **kwargs):
    if authenticator.type == "recovery_codes":
        audit_event_record(action=AuditAction.RECOVERY_CODES, actor=user, request=request)


@receiver(mfa_signals.authentication_failed)
def on_mfa_failed(sender, request, user, authenticator, **kwargs):
    audit_event_record(
        action=AuditAction.LOGIN_FAILED,
        actor=user,
        request=request,
        metadata={"factor": authenticator.type},
    )
