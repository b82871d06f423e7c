"""Keeps one-time tokens out of log lines.

Email confirmation and password reset links carry their key in the URL path, and the
first request to them shows up in access logs and in Django's request warnings. Whoever
reads the logs must not be able to confirm an address or reset a password with them.
"""

import logging
import re

from gunicorn.glogging import Logger

TOKEN_IN_PATH = re.compile(r"(/accounts/(?:confirm-email|password/reset/key)/)[^/\s?\"']+")


def redact(text: str) -> str:
    return TOKEN_IN_PATH.sub(r"\1[redacted]", text)


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class GunicornLogger(Logger):
    """gunicorn's logger with its access log redacted (see hosting/gunicorn_conf.py)."""

    def setup(self, cfg):
        super().setup(cfg)
        self.access_log.addFilter(RedactTokensFilter())
        self.error_log.addFilter(RedactTokensFilter())
