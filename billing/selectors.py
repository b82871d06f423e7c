from billing.models import Plan


def active_plans():
    """The plans on sale, cheapest first: one query."""
    return list(Plan.objects.filter(is_active=True).order_by("sort_order", "price_cents"))
