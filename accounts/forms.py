from allauth.core import context
from allauth.mfa.totp.forms import ActivateTOTPForm
from allauth.mfa.totp.internal import auth as totp_auth
from django import forms


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=150, required=False, label="Name")


class StableSecretActivateTOTPForm(ActivateTOTPForm):
    """allauth's TOTP activation form, minus a new secret on every GET.

    allauth draws a fresh secret whenever the form is shown, so reloading the page (or
    opening it in a second tab) silently replaced the QR code already scanned, and the
    code from it was refused as "Incorrect code.". Here the pending secret, kept in the
    session, stays until the activation succeeds (allauth then clears it) or the session
    ends."""

    def __init__(self, *args, **kwargs) -> None:
        session = context.request.session
        pending = session.get(totp_auth.SECRET_SESSION_KEY)
        super().__init__(*args, **kwargs)
        if pending:
            self.secret = session[totp_auth.SECRET_SESSION_KEY] = pending
