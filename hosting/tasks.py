"""Shared task settings: every task retries with exponential backoff."""

from procrastinate import RetryStrategy

DEFAULT_RETRY = RetryStrategy(max_attempts=5, exponential_wait=5)
