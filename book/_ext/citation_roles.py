"""Sphinx extension: bibliography entries that assistive technology accepts as list items.

Docutils writes a bibliography as `<div role="list">` whose entries have
role="doc-biblioentry", a role deprecated in DPUB-ARIA 1.1 that is not a list item, so a
screen reader meets a list without items (axe-core: aria-required-children, critical).
This gives the entries role="listitem" instead.
"""

from __future__ import annotations

DEPRECATED = ' role="doc-biblioentry"'
LIST_ITEM = ' role="listitem"'


def fix_citation_roles(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if body and DEPRECATED in body:
        context["body"] = body.replace(DEPRECATED, LIST_ITEM)


def setup(app):
    app.connect("html-page-context", fix_citation_roles)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
