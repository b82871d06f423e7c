from django.urls import path

from support import views

app_name = "support"

urlpatterns = [
    path("", views.ticket_list, name="tickets"),
    path("tickets/new/", views.ticket_new, name="ticket_new"),
    path("tickets/<uuid:ticket_uuid>/", views.ticket_detail, name="ticket"),
    path("tickets/<uuid:ticket_uuid>/close/", views.ticket_close, name="ticket_close"),
    path("tickets/<uuid:ticket_uuid>/reopen/", views.ticket_reopen, name="ticket_reopen"),
]
