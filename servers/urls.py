from django.urls import path

from servers import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
