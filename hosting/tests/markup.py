"""Reading rendered pages in tests: their tags, what a strict Content-Security-Policy would
block, and where their links go."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.urls import Resolver404, resolve


class Page(HTMLParser):
    """The start tags of a page with their attributes, and its inline scripts."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    @classmethod
    def of(cls, response) -> Page:
        return cls(response.content.decode())

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data.strip())

    def find(self, tag, **attrs) -> list[dict]:
        """The attributes of every `tag` whose attributes include `attrs`."""
        return [
            found
            for name, found in self.tags
            if name == tag and all(found.get(k) == v for k, v in attrs.items())
        ]

    @property
    def label_targets(self) -> set[str]:
        return {a["for"] for a in self.find("label") if a.get("for")}

    @property
    def input_ids(self) -> dict[str, str]:
        """Visible form controls: id -> name (or type)."""
        return {
            a["id"]: a.get("name") or a.get("type", "")
            for t, a in self.tags
            if t in {"input", "select", "textarea"} and a.get("type") != "hidden" and a.get("id")
        }

    @property
    def csp_problems(self) -> list[str]:
        """What the Content-Security-Policy would block: inline scripts, <style> elements,
        style= and on*= attributes."""
        problems = []
        for tag, attrs in self.tags:
            if tag == "script" and "src" not in attrs:
                problems.append("<script> without src")
            if tag == "style":
                problems.append("<style> element")
            problems += [
                f"{name}= on <{tag}>" for name in attrs if name == "style" or name.startswith("on")
            ]
        problems += [f"inline script: {script[:40]!r}" for script in self.inline_scripts]
        return problems

    def links(self, page_url: str = "/") -> list[str]:
        """The paths of this site that the page's links (href) and forms (action) lead
        to, relative ones made absolute against `page_url`; other sites, fragments of this
        page and static files are left out."""
        targets = [attrs["href"] for _, attrs in self.tags if attrs.get("href")]
        targets += [attrs.get("action") or page_url for attrs in self.find("form")]
        paths = []
        for target in targets:
            url = urlsplit(urljoin(f"http://testserver{page_url}", target))
            if url.scheme not in ("http", "https") or url.netloc != "testserver":
                continue
            if url.path == urlsplit(page_url).path and url.fragment:
                continue  # "#plans": a place on this page
            if url.path.startswith(settings.STATIC_URL):
                continue
            paths.append(url.path)
        return paths


def page_text(response) -> str:
    return response.content.decode()


def assert_csp_clean(response) -> None:
    assert Page.of(response).csp_problems == []


def unresolved_links(page: Page, page_url: str, known_missing=()) -> list[str]:
    """The links and form actions of `page`, found at `page_url`, that no URL pattern
    serves, other than those matching one of the `known_missing` patterns (compiled
    regexes)."""
    dead = []
    for path in page.links(page_url):
        try:
            resolve(path)
        except Resolver404:
            if not any(pattern.fullmatch(path) for pattern in known_missing):
                dead.append(path)
    return dead
