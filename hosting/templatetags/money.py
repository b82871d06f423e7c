"""Money in templates: `{{ plan.price_cents|cents:plan.currency }}`."""

from django import template

from hosting.money import format_cents

register = template.Library()


@register.filter
def cents(value, currency="usd"):
    """Formatted amount; empty for a missing one."""
    if value is None or value == "":
        return ""
    return format_cents(value, currency)
