from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from hosting.activity import activity_page_for, page_number


@login_required
def activity(request):
    """The customer's one timeline, `?page=N` (anything else is page 1)."""
    page = page_number(request.GET.get("page"))
    return render(request, "hosting/activity.html", activity_page_for(request.user, page=page))
