"""Checks of a customer's domain from outside: DNS (dns.py) and its HTTPS certificate (tls.py)."""
