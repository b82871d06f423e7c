"""What the fuzz drill sends, as hypothesis strategies: form bodies (plausible values,
junk of every kind, fields missing, fields nobody asked for, values of the wrong type,
bodies that are not forms at all) and Stripe webhook deliveries (random bytes, forged
and stale signatures, and validly signed events bent out of shape)."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import stripe
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import MULTIPART_CONTENT
from hypothesis import strategies as st

URLENCODED = "application/x-www-form-urlencoded"


@dataclass
class Body:
    """One request's input: form fields (encoded by the test client as multipart, or
    urlencoded), or raw bytes with a content type; plus headers, and the path when it is
    drawn too."""

    fields: dict | None = None
    raw: bytes | None = None
    content_type: str = MULTIPART_CONTENT
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    def send(self, client, method: str, path: str):
        if method == "GET":
            if self.raw is not None:
                # The WSGI environ carries the query string as latin-1 text.
                return client.get(
                    path, QUERY_STRING=self.raw.decode("latin-1"), headers=self.headers
                )
            return client.get(path, self.fields or {}, headers=self.headers)
        if self.raw is not None:
            # generic(): post() would take a multipart content type as fields to encode.
            return client.generic(
                "POST", path, self.raw, content_type=self.content_type, headers=self.headers
            )
        if self.content_type == URLENCODED:
            body = urlencode(self.fields or {}, doseq=True)
            return client.post(path, body, content_type=URLENCODED, headers=self.headers)
        return client.post(path, self.fields or {}, headers=self.headers)

    def summary(self, limit: int = 160) -> str:
        """Short enough for a report line."""
        shown = repr(self.fields if self.raw is None else self.raw)
        if len(shown) > limit:
            shown = f"{shown[:limit]}... ({len(shown)} characters)"
        return f"{self.path} {shown}" if self.path else shown


# -- values ---------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\r\n",
    "\u202e",  # right-to-left override
    "\ufeff",
    "null",
    "None",
    "[]",
    "{}",
    "-1",
    "0",
    "1e309",
    "NaN",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "%s%s%s%n",
    "{{ settings.SECRET_KEY }}",
    "🤖" * 40,
    "ß" * 300,
]

short_text = st.one_of(
    st.text(),  # every code point but surrogates: control characters and NUL included
    st.text(st.characters(max_codepoint=0x1F)),  # control characters only
    st.sampled_from(NASTY),
)
# Very long: past every max_length, and now and then past Django's 2.5 MB limit on a
# request's form data.
long_text = st.builds(
    lambda unit, times: unit * times,
    st.text(min_size=1, max_size=4),
    st.one_of(st.integers(100, 5_000), st.just(1_000_000)),
)
# Long ones one time in four: each costs the time it takes to send and parse it.
text = st.one_of(short_text, short_text, short_text, long_text)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # nan and inf included: they reach the form as text
)
uploaded_file = st.builds(
    lambda name, content: SimpleUploadedFile(name or "f", content),
    st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=12),
    st.binary(max_size=256),
)
# A value in the wrong shape for any text field: a number, a boolean, several values for
# one field, a file.
value = st.one_of(
    text,
    numbers,
    st.booleans(),
    st.lists(st.one_of(text, numbers), min_size=1, max_size=3),
    uploaded_file,
)
# A query string has no body limit in Django: the front server's request-line limit (4 KB
# in gunicorn) stops a long one first, so it stays in the thousands here.
query_text = st.one_of(
    short_text,
    short_text,
    st.builds(
        lambda unit, times: unit * times, st.text(min_size=1, max_size=4), st.integers(100, 2_000)
    ),
)
query_value = st.one_of(query_text, numbers, st.lists(query_text, min_size=1, max_size=3))
field_name = st.one_of(st.text(max_size=30), st.sampled_from(["csrfmiddlewaretoken", "id", "user"]))


def form_bodies(plausible: dict[str, st.SearchStrategy], *, query: bool = False):
    """Bodies for a form whose fields take `plausible` values: complete and plausible
    (so some are accepted), or each field plausible, junk or missing with extra fields
    beside them, or not a form at all."""
    junk = query_value if query else value
    complete = st.fixed_dictionaries(plausible)
    mixed = st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional={k: st.one_of(v, junk) for k, v in plausible.items()}),
        st.dictionaries(field_name, junk, max_size=3),
    )
    encoding = st.sampled_from([MULTIPART_CONTENT, URLENCODED])
    as_form = st.builds(
        lambda fields, content_type: Body(fields=fields, content_type=content_type),
        st.one_of(complete, mixed),
        encoding,
    )
    raw = st.builds(
        lambda raw, content_type: Body(raw=raw, content_type=content_type),
        st.one_of(st.binary(max_size=4096), text.map(lambda s: s.encode())),
        st.sampled_from(
            [
                URLENCODED,
                MULTIPART_CONTENT,  # with no part matching its boundary
                "multipart/form-data",  # no boundary at all
                "application/json",
                "text/plain",
                "",
            ]
        ),
    )
    return st.one_of(as_form, as_form, raw)


# -- the Stripe webhook -----------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and Infinity too: Python's json writes and reads them
    short_text,
    # What JSON can carry and PostgreSQL's jsonb cannot: NUL, half a surrogate pair.
    st.sampled_from(["\x00", "a\x00", "\ud800", "\udfff x"]),
)
json_values = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)


# Nested deeper than Python's json module can read (it recurses).
deep_json = st.integers(500, 200_000).map(lambda depth: b"[" * depth + b"]" * depth)


def _sign(payload: str, *, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        payload, settings.STRIPE_WEBHOOK_SECRET, timestamp=timestamp
    )


def _paths(node, prefix=()):
    """Every path into a JSON document, the document itself first."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


@st.composite
def bent_events(draw, templates: list[dict]):
    """A real event of one of the handled (or ignored) types, with a new id, and up to
    four of its values replaced by random JSON, or removed: mostly inside the object it
    carries (what the handlers read), now and then anywhere (what the envelope check
    reads)."""
    event = copy.deepcopy(draw(st.sampled_from(templates)))
    event["id"] = f"evt_fuzz_{draw(st.uuids()).hex}"
    for _ in range(draw(st.integers(0, 4))):
        paths = list(_paths(event))
        inside = [path for path in paths if path[:2] == ("data", "object") and len(path) > 2]
        path = draw(st.sampled_from(inside if inside and draw(st.booleans()) else paths))
        if not path:
            event = draw(json_values)
            continue
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return event


def webhook_bodies(templates: list[dict]):
    """Deliveries to the webhook: unsigned or forged, validly signed junk, validly signed
    bent events, and events signed longer ago than the 300 s tolerance."""
    now = int(time.time())
    forged_signature = st.one_of(
        short_text,
        st.builds(
            lambda t, v1: f"t={t},v1={v1}",
            st.integers(now - 600, now + 600),
            st.text("0123456789abcdef", min_size=64, max_size=64),
        ),
    )
    payloads = st.one_of(
        st.binary(max_size=4096),
        deep_json,
        json_values.map(lambda v: json.dumps(v).encode()),
        bent_events(templates).map(lambda e: json.dumps(e).encode()),
    )
    unsigned = st.builds(
        lambda raw, signature: Body(
            raw=raw,
            content_type="application/json",
            headers={"Stripe-Signature": signature} if signature is not None else {},
        ),
        payloads,
        st.one_of(st.none(), forged_signature),
    )
    signed_text = st.one_of(
        short_text,
        deep_json.map(bytes.decode),
        json_values.map(json.dumps),
        bent_events(templates).map(json.dumps),
        bent_events(templates).map(json.dumps),
    )
    signed = signed_text.map(
        lambda payload: Body(
            raw=payload.encode(),
            content_type="application/json",
            headers={"Stripe-Signature": _sign(payload)},
        )
    )
    stale = st.builds(
        lambda payload, age: Body(
            raw=payload.encode(),
            content_type="application/json",
            headers={"Stripe-Signature": _sign(payload, timestamp=int(time.time()) - age)},
        ),
        bent_events(templates).map(json.dumps),
        st.integers(301, 10**6),
    )
    return st.one_of(unsigned, signed, signed, stale)
