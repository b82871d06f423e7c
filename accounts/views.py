from allauth.mfa.totp.views import ActivateTOTPView as AllauthActivateTOTPView
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.forms import ProfileForm, StableSecretActivateTOTPForm
from accounts.selectors import recent_security_events
from accounts.services import user_update_profile


@login_required
@require_http_methods(["GET", "POST"])
def account_overview(request):
    """Name, email, password, two-factor status and recent security events."""
    form = ProfileForm(request.POST or None, initial={"name": request.user.name})
    if request.method == "POST" and form.is_valid():
        user_update_profile(user=request.user, name=form.cleaned_data["name"])
        messages.success(request, "Your name was saved.")
        return redirect("account_overview")
    return render(
        request,
        "accounts/overview.html",
        {
            "form": form,
            "mfa_enabled": is_mfa_enabled(request.user),
            "events": recent_security_events(request.user),
        },
    )


class ActivateTOTPView(AllauthActivateTOTPView):
    """allauth's TOTP activation (its reauthentication and checks included), with a
    secret that survives a reload of the page: see StableSecretActivateTOTPForm."""

    form_class = StableSecretActivateTOTPForm


activate_totp = ActivateTOTPView.as_view()


@require_GET
def two_factor_lost(request):
    """What to do without the authenticator app: a recovery code, or support. Open to
    anyone, since the customer who needs it is stuck halfway through logging in."""
    return render(request, "accounts/two_factor_lost.html")
