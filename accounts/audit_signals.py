"""Connects allauth's and Django's account signals to the audit trail."""
