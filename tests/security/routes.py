"""Every route the project serves, with sample arguments, taken from the URL configuration so
that a new route is checked without anyone listing it."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")
CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Route:
    pattern: str
    name: str | None
    callback: Callable


def routes() -> Iterator[Route]:
    def walk(patterns, prefix: str = "") -> Iterator[Route]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield Route(prefix + str(entry.pattern), entry.name, entry.callback)

    yield from walk(get_resolver().url_patterns)


def sample_path(route: Route, value: Callable[[str, str, str], str]) -> str:
    """The route with each argument replaced by `value(name, route pattern, detail)`, where
    detail is a regex group's body or a path converter's name."""

    def group(match: re.Match) -> str:
        name, body = match.groups()
        return value(name, route.pattern, body)

    path = GROUP.sub(group, route.pattern)
    path = CONVERTER.sub(lambda m: value(m.group(2), route.pattern, m.group(1) or ""), path)
    path = path.replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")
    return "/" + path


def view_class(route: Route):
    """The class-based view (or DRF viewset) behind a route, if any."""
    return getattr(route.callback, "view_class", None) or getattr(route.callback, "cls", None)
