import datetime as dt
import logging

from django.conf import settings
from gunicorn.config import Config

from hosting.log_redaction import GunicornLogger, RedactTokensFilter, redact

CONFIRM = "/accounts/confirm-email/MQ:1vbL2x:secret-key-abc/"
RESET = "/accounts/password/reset/key/1-cjq8ab-0123456789abcdef/"


def test_redact_keeps_the_route_and_drops_the_key():
    assert redact(f"GET {CONFIRM} 200") == "GET /accounts/confirm-email/[redacted]/ 200"
    assert redact(f"GET {RESET}") == "GET /accounts/password/reset/key/[redacted]/"
    assert redact("GET /accounts/login/ 200") == "GET /accounts/login/ 200"


def test_the_filter_rewrites_formatted_records():
    record = logging.LogRecord(
        "django.request", logging.WARNING, "", 0, "Not Found: %s", (RESET,), None
    )
    RedactTokensFilter().filter(record)
    assert "0123456789abcdef" not in record.getMessage()


def test_every_configured_handler_redacts():
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_tokens" in handler.get("filters", []), name


def test_gunicorn_access_log_is_redacted():
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = GunicornLogger(cfg)
    captured = []
    logger.access_log.addHandler(logging.Handler())
    logger.access_log.handlers[-1].emit = lambda record: captured.append(record.getMessage())

    class Response:
        status = "200 OK"
        response_length = 12
        headers = []
        sent = 12

    class Request:
        headers = []

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": CONFIRM,
        "PATH_INFO": CONFIRM,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.1",
    }
    logger.access(Response(), Request(), environ, dt.timedelta(seconds=0.01))
    assert captured and "secret-key-abc" not in captured[0]
    assert "/accounts/confirm-email/[redacted]/" in captured[0]
