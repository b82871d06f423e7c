from django.urls import path

from servers.views import deployments, domains, server, tls

app_name = "servers"

urlpatterns = [
    path("tls/ask/<str:token>/", tls.tls_ask, name="tls_ask"),
    path("<uuid:server_uuid>/", server.server_detail, name="detail"),
    path("<uuid:server_uuid>/status/", server.server_status, name="status"),
    path("<uuid:server_uuid>/power/", server.server_power, name="power"),
    path("<uuid:server_uuid>/password/", server.password_reveal, name="password_reveal"),
    path("<uuid:server_uuid>/password/reset/", server.password_reset, name="password_reset"),
    path("<uuid:server_uuid>/deployments/", deployments.deployment_list, name="deployments"),
    path(
        "<uuid:server_uuid>/deployments/<uuid:deployment_uuid>/",
        deployments.deployment_detail,
        name="deployment",
    ),
    path(
        "<uuid:server_uuid>/deployments/<uuid:deployment_uuid>/log/",
        deployments.deployment_log,
        name="deployment_log",
    ),
    path(
        "<uuid:server_uuid>/deployments/<uuid:deployment_uuid>/cancel/",
        deployments.deployment_cancel,
        name="deployment_cancel",
    ),
    path(
        "<uuid:server_uuid>/deployments/<uuid:deployment_uuid>/redeploy/",
        deployments.deployment_redeploy,
        name="deployment_redeploy",
    ),
    path("<uuid:server_uuid>/domains/", domains.domain_list, name="domains"),
    path("<uuid:server_uuid>/domains/list/", domains.domain_list_partial, name="domains_list"),
    path(
        "<uuid:server_uuid>/domains/<uuid:domain_uuid>/check/",
        domains.domain_check,
        name="domain_check",
    ),
    path(
        "<uuid:server_uuid>/domains/<uuid:domain_uuid>/remove/",
        domains.domain_remove,
        name="domain_remove",
    ),
]
