from django.urls import path

from billing import simulator_views, views

app_name = "billing"

urlpatterns = [
    path("", views.payments, name="payments"),
    path("payment-method/", views.billing_portal, name="billing_portal"),
    path(
        "subscriptions/<int:subscription_pk>/renewal/",
        views.subscription_renewal,
        name="subscription_renewal",
    ),
    path("payments/<uuid:payment_uuid>/", views.payment_detail, name="payment_detail"),
    path("checkout/<slug:plan_slug>/", views.checkout, name="checkout"),
    path("checkout/<uuid:payment_uuid>/done/", views.checkout_done, name="checkout_done"),
    path(
        "checkout/<uuid:payment_uuid>/cancelled/",
        views.checkout_cancelled,
        name="checkout_cancelled",
    ),
    path("webhooks/stripe/", views.stripe_webhook, name="stripe_webhook"),
    path(
        "simulator/checkout/<str:session_id>/",
        views.simulator_checkout,
        name="simulator_checkout",
    ),
    path(
        "simulator/subscriptions/<str:subscription_id>/",
        simulator_views.subscription,
        name="simulator_subscription",
    ),
]
