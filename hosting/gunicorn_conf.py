"""gunicorn settings the Procfile loads with `-c python:hosting.gunicorn_conf`."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = "-"
logger_class = "hosting.log_redaction.GunicornLogger"
# Only the proxy in front of us may say the request was HTTPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
