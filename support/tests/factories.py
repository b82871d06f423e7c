import factory

from accounts.tests.factories import UserFactory
from support.models import Ticket, TicketMessage


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    user = factory.SubFactory(UserFactory)
    subject = factory.Sequence(lambda n: f"Help with server {n}")
    description = "My site is down."


class TicketMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TicketMessage

    ticket = factory.SubFactory(TicketFactory)
    author = factory.SelfAttribute("ticket.user")
    body = "Any news?"
