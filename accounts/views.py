from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.forms import ProfileForm
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
