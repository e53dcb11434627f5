"""The report's templates (runloop/templates/*.j2, package data), rendered by Jinja2 with every
value escaped: names from a scenario file or the wire cannot inject markup into report.html."""
from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader


@cache
def _env() -> Environment:
    # A field a run did not record (an old report.json, a fault without a reason) shows empty.
    return Environment(loader=PackageLoader("runloop", "templates"), autoescape=True)


def render(template: str, **context) -> str:
    """`template` (a file name under runloop/templates) rendered with `context`, autoescaped."""
    return _env().get_template(template).render(**context)
