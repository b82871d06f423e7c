"""Small database helpers shared by the apps' models."""

import json

from django.db import connection, models


def choices_check(field: str, choices: type[models.TextChoices], table: str):
    """A CheckConstraint that keeps `field` within `choices`, so the database itself
    refuses a status no code path knows about."""
    return models.CheckConstraint(
        condition=models.Q(**{f"{field}__in": choices.values}),
        name=f"{table}_{field}_valid",
    )


def json_document(sql: str, params: dict) -> dict:
    """The one row of a SELECT that builds a page's data as one JSON document: a page
    shaped into one query costs one round trip and no ORM compilation. Read as text and
    parsed here, so the result does not depend on which JSON loader the driver has."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (document,) = cursor.fetchone()
    return json.loads(document)


def instances(model: type[models.Model], rows: list[dict]) -> list[models.Model]:
    """`model` instances from rows of a JSON document (keys are column names), each as
    `.only(those columns)` would load it: a column left out is deferred, not blank."""
    fields = model._meta.concrete_fields
    attnames = {field.attname for field in fields}
    made = []
    for row in rows:
        if unknown := row.keys() - attnames:  # a typo in the SQL, not a blank field
            raise KeyError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
        # from_db takes the values in the model's field order.
        present = [field for field in fields if field.attname in row]
        values = [field.to_python(row[field.attname]) for field in present]
        made.append(model.from_db(connection.alias, [f.attname for f in present], values))
    return made
