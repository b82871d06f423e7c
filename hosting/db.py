"""Small database helpers shared by the apps' models."""

from django.db import models


def choices_check(field: str, choices: type[models.TextChoices], table: str):
    """A CheckConstraint that keeps `field` within `choices`, so the database itself
    refuses a status no code path knows about."""
    return models.CheckConstraint(
        condition=models.Q(**{f"{field}__in": choices.values}),
        name=f"{table}_{field}_valid",
    )
