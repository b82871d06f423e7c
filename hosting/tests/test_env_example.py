"""`.env.example` is the operator's list of every setting: none may be missing from it."""

import re

from django.conf import settings


def test_every_environment_variable_the_settings_read_is_documented():
    source = (settings.BASE_DIR / "hosting" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', source))
    documented = set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]*)=", (settings.BASE_DIR / ".env.example").read_text(), re.M
        )
    )
    assert len(read) > 20  # the pattern still finds what settings.py reads
    assert read - documented == set()
