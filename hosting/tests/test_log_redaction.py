import datetime as dt
import io
import logging

import pytest
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


def _attached_handlers():
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            # pytest's own capture handlers are not the site's; a NullHandler emits nothing.
            ours = not type(handler).__module__.startswith("_pytest")
            if ours and not isinstance(handler, logging.NullHandler):
                yield logger.name, handler


def test_every_handler_attached_at_run_time_redacts():
    attached = list(_attached_handlers())
    assert attached  # the root's console handler at least
    for name, handler in attached:
        assert any(isinstance(f, RedactTokensFilter) for f in handler.filters), (name, handler)


@pytest.mark.django_db
def test_a_404_on_a_confirmation_url_leaves_no_key_in_any_log_stream(client, settings):
    settings.DEBUG = True  # Django's own console handler speaks only then
    streams = {}
    for name, handler in _attached_handlers():
        if isinstance(handler, logging.StreamHandler):
            streams[(name, handler)] = handler.setStream(io.StringIO())
    try:
        assert client.get(f"{CONFIRM}extra/").status_code == 404
        written = "".join(handler.stream.getvalue() for _, handler in streams)
    finally:
        for (_, handler), stream in streams.items():
            handler.setStream(stream)
    assert "Not Found: /accounts/confirm-email/[redacted]/extra/" in written
    assert "secret-key-abc" not in written


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


# gunicorn as it is started: the command lines below load `hosting/gunicorn_conf.py`,
# and that module names the redacting logger.


def _command(source: str) -> list[str]:
    """gunicorn's argv as the Procfile's web process or the container image runs it."""
    import json
    import shlex
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent.parent
    if source == "Procfile":
        lines = (project / "Procfile").read_text().splitlines()
        return shlex.split(next(line for line in lines if line.startswith("web:"))[4:])
    lines = (project / "deploy" / "Dockerfile").read_text().splitlines()
    return json.loads(next(line for line in lines if line.startswith("CMD "))[4:])


def test_the_config_module_names_the_redacting_logger():
    from hosting import gunicorn_conf

    assert gunicorn_conf.logger_class == "hosting.log_redaction.GunicornLogger"
    assert gunicorn_conf.accesslog == "-"

    cfg = Config()
    for name, value in vars(gunicorn_conf).items():
        if name in cfg.settings:  # as gunicorn applies a `python:` config module
            cfg.set(name.lower(), value)
    assert cfg.logger_class is GunicornLogger


@pytest.mark.parametrize("source", ["Procfile", "Dockerfile"])
def test_gunicorn_started_as_deployed_logs_through_the_redacting_logger(source, monkeypatch):
    import sys
    from types import SimpleNamespace

    from gunicorn.app.wsgiapp import WSGIApplication

    argv = _command(source)
    assert argv[:3] == ["gunicorn", "-c", "python:hosting.gunicorn_conf"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    cfg = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg  # gunicorn's own loading
    assert cfg.logger_class is GunicornLogger

    # gunicorn's logger replaces the handlers of these two loggers; put them back after.
    gunicorn_loggers = [logging.getLogger(n) for n in ("gunicorn.error", "gunicorn.access")]
    saved = [(lg, lg.handlers[:], lg.filters[:]) for lg in gunicorn_loggers]
    captured = []
    try:
        logger = cfg.logger_class(cfg)  # what gunicorn's arbiter builds from this config
        handler = logging.Handler()
        handler.emit = lambda record: captured.append(record.getMessage())
        logger.access_log.addHandler(handler)
        response = SimpleNamespace(status="200 OK", response_length=12, headers=[], sent=12)
        environ = {
            "REQUEST_METHOD": "GET",
            "RAW_URI": CONFIRM,
            "PATH_INFO": CONFIRM,
            "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.1",
        }
        logger.access(response, SimpleNamespace(headers=[]), environ, dt.timedelta(seconds=0.01))
    finally:
        for lg, handlers, filters in saved:
            lg.handlers[:], lg.filters[:] = handlers, filters
    assert captured, "no access line"
    assert "secret-key-abc" not in captured[0]
    assert "/accounts/confirm-email/[redacted]/" in captured[0]
