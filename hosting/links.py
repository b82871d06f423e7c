"""Links for long lists: each URL name is reversed once, not once per row. reverse()
costs about 30 µs; a page of 50 rows with two links each spent 3 ms on it."""

from functools import lru_cache
from uuid import UUID

from django.urls import get_script_prefix, reverse

# Stand-ins that fit the <uuid:...> converter, each replaced by a row's own value.
_STAND_INS = tuple(UUID(int=n) for n in range(1, 4))


@lru_cache(maxsize=128)
def _pattern(name: str, arity: int, prefix: str) -> str:
    """The path of `name` as a str.format pattern with one slot per argument (the script
    prefix is in the key because reverse() puts it in the path)."""
    path = reverse(name, args=_STAND_INS[:arity]).replace("{", "{{").replace("}", "}}")
    for slot, stand_in in enumerate(_STAND_INS[:arity]):
        if path.count(str(stand_in)) != 1:
            raise ValueError(f"{name}: argument {slot} does not appear once in {path}")
        path = path.replace(str(stand_in), f"{{{slot}}}")
    return path


def uuid_link(name: str, *uuids: UUID) -> str:
    """reverse(name, args=uuids), for a URL whose arguments are all uuids."""
    return _pattern(name, len(uuids), get_script_prefix()).format(*uuids)
