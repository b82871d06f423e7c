from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from hosting import activity_views, health, views
from servers.views import server as server_views

# Staff sign in through the same allauth login (and two-factor) as everyone else.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Hosting administration"
admin.site.site_title = "Hosting admin"
admin.site.index_title = "Customers, servers, payments and support"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("pricing/", views.pricing, name="pricing"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", server_views.dashboard, name="dashboard"),
    path("servers/", include("servers.urls")),
    path("billing/", include("billing.urls")),
    path("support/", include("support.urls")),
    path("activity/", activity_views.activity, name="activity"),
    path("admin/database/", include("hosting.admin_database")),
    path("admin/", admin.site.urls),
]

handler400 = "hosting.views.bad_request"
handler403 = "hosting.views.permission_denied"
handler404 = "hosting.views.page_not_found"
handler500 = "hosting.views.server_error"
