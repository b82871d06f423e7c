"""The `date` filter the templates use gives exactly what Django's own gives."""

from datetime import UTC, datetime, timedelta, timezone

from django.template import Context, Engine, defaultfilters, engines
from django.utils import timezone as django_timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from hosting.templatetags import dates

# Every format the templates use, and a few that must go to Django's filter.
FORMATS = [
    "c",
    "M j, Y",
    "M j, Y H:i",
    "Y-m-d H:i",
    "M j, H:i",
    "M j, Y H:i:s",
    "M j, Y H:i e",
    "H:i:s",
    "DATE_FORMAT",
    "SHORT_DATETIME_FORMAT",
    r"\Y\e\s Y",
    "N jS F, P",
]

datetimes = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.none()
) | st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@settings(max_examples=300, deadline=None)
@given(value=datetimes, format_string=st.sampled_from(FORMATS) | st.text("cYmMdjHisDe ,:-\\/"))
def test_the_filter_gives_what_djangos_gives(value, format_string):
    assert dates.date(value, format_string) == defaultfilters.date(value, format_string)


def test_what_is_not_a_datetime_goes_to_djangos_filter():
    for value in [None, "", "2026-01-02", datetime(2026, 1, 2).date(), 5]:
        assert dates.date(value, "M j, Y") == defaultfilters.date(value, "M j, Y")
    assert dates.date(datetime(2026, 1, 2, 3, 4), None) == "Jan. 2, 2026"  # DATE_FORMAT


def test_the_templates_use_it_in_the_current_time_zone():
    builtin = engines["django"].engine.template_builtins[-1]
    assert builtin.filters["date"] is dates.date
    source = "{{ value|date:'c' }} {{ value|date:'M j, Y H:i' }}"
    plain = Engine(builtins=[])  # Django's own filter
    value = datetime(2026, 3, 28, 23, 30, 5, 7, tzinfo=UTC)
    with django_timezone.override("Europe/Berlin"):
        ours = engines["django"].from_string(source).render({"value": value})
        djangos = plain.from_string(source).render(Context({"value": value}))
    assert ours == djangos == "2026-03-29T00:30:05.000007+01:00 Mar 29, 2026 00:30"
