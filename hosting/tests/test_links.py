import uuid

import pytest
from django.urls import NoReverseMatch, reverse, set_script_prefix

from hosting.links import uuid_link


@pytest.mark.parametrize(
    "name,arity",
    [
        ("servers:detail", 1),
        ("billing:payment_detail", 1),
        ("support:ticket", 1),
        ("servers:deployment", 2),
        ("servers:deployment_redeploy", 2),
    ],
)
def test_a_link_is_what_reverse_gives(name, arity):
    for _ in range(3):  # the pattern is made once, then filled with each row's values
        args = [uuid.uuid4() for _ in range(arity)]
        assert uuid_link(name, *args) == reverse(name, args=args)


def test_a_link_follows_the_script_prefix():
    args = [uuid.uuid4()]
    try:
        set_script_prefix("/panel/")
        assert uuid_link("servers:detail", *args) == f"/panel/servers/{args[0]}/"
    finally:
        set_script_prefix("/")
    assert uuid_link("servers:detail", *args) == f"/servers/{args[0]}/"


def test_a_url_without_uuid_arguments_is_refused():
    with pytest.raises(NoReverseMatch):
        uuid_link("dashboard", uuid.uuid4())
