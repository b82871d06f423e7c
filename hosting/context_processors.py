from django.conf import settings


def site(request):
    """What every page needs: whether a simulator stands in for Stripe or DigitalOcean."""
    return {
        "test_mode": not settings.STRIPE_SECRET_KEY or not settings.DIGITALOCEAN_TOKEN,
    }
