"""The customer's forms. Lengths match the services' limits; the server is chosen among
the customer's own, so a forged id is a form error."""

from django import forms

from servers.models import Server
from support.models import TicketPriority
from support.services import BODY_MAX_LENGTH, SUBJECT_MAX_LENGTH


class TicketForm(forms.Form):
    subject = forms.CharField(max_length=SUBJECT_MAX_LENGTH)
    description = forms.CharField(
        max_length=BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=f"What happened, what you expected. At most {BODY_MAX_LENGTH:,} characters.",
    )
    priority = forms.ChoiceField(choices=TicketPriority.choices, initial=TicketPriority.MEDIUM)
    server = forms.ModelChoiceField(
        queryset=Server.objects.none(),
        required=False,
        empty_label="None",
        help_text="The server this is about, if any.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["server"].queryset = (
            Server.objects.filter(user=user).only("pk", "name", "user_id").order_by("name")
        )


class ReplyForm(forms.Form):
    body = forms.CharField(
        label="Your reply",
        max_length=BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
    )
