from django.urls import path

from servers import views

app_name = "servers"

urlpatterns = [
    path("<uuid:server_uuid>/", views.server_detail, name="detail"),
    path("<uuid:server_uuid>/status/", views.server_status, name="status"),
]
