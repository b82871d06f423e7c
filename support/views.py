"""The customer's support pages: their tickets (`/support/`), a new ticket, and one
ticket's conversation with a reply form and Close / Reopen. Another customer's ticket is
a 404 on every URL and method: the ticket is looked up before the method is checked."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from support import selectors, services
from support.forms import ReplyForm, TicketForm


def _to_ticket(ticket):
    return redirect("support:ticket", ticket.uuid)


@login_required
@require_GET
def ticket_list(request):
    context = selectors.tickets_page_for(
        request.user, request.GET.get("status", ""), request.GET.get("q", "")
    )
    return render(request, "support/tickets.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def ticket_new(request):
    form = TicketForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            ticket = services.ticket_create(user=request.user, **form.cleaned_data)
        except services.TicketRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(request, "Ticket opened: we will reply here and by email.")
            return _to_ticket(ticket)
    status = 400 if request.method == "POST" else 200
    return render(request, "support/ticket_new.html", {"form": form}, status=status)


@login_required
def ticket_detail(request, ticket_uuid):
    """GET shows the conversation (and marks it read); POST is a reply."""
    context = selectors.ticket_page_for(request.user, ticket_uuid)
    ticket = context["ticket"]
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    form = ReplyForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.ticket_reply_by_customer(
                    ticket_id=ticket.pk, user=request.user, request=request, **form.cleaned_data
                )
            except services.TicketRefused as refusal:
                messages.error(request, str(refusal))
            else:
                messages.success(request, "Reply sent.")
            return _to_ticket(ticket)
        return render(request, "support/ticket.html", {**context, "form": form}, status=400)
    if ticket.unread:  # a ticket already read costs no write (and no WAL flush) per view
        services.ticket_seen_by_customer(ticket_id=ticket.pk, user=request.user)
    return render(request, "support/ticket.html", {**context, "form": form})


def _status_view(service, done: str):
    @login_required
    def view(request, ticket_uuid):
        ticket = selectors.ticket_for(request.user, ticket_uuid)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            service(ticket_id=ticket.pk, user=request.user, request=request)
        except services.TicketRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(request, done)
        return _to_ticket(ticket)

    return view


ticket_close = _status_view(services.ticket_close_by_customer, "Ticket closed.")
ticket_reopen = _status_view(services.ticket_reopen_by_customer, "Ticket reopened.")
