from django.urls import path

from accounts import views

# Included before allauth.urls under the same /accounts/ prefix, so a path here takes the
# place of allauth's own (same path, same name).
urlpatterns = [
    path("", views.account_overview, name="account_overview"),
    path("2fa/totp/activate/", views.activate_totp, name="mfa_activate_totp"),
    path("2fa/lost/", views.two_factor_lost, name="two_factor_lost"),
]
