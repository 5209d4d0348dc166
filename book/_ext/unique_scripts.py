"""Sphinx extension: include each script only once per page.

sphinx-thebe 0.3.1 registers its inline configuration script (`const THEBE_JS_URL = ...`)
twice with Sphinx 7.4, and the second copy throws "Identifier 'THEBE_JS_URL' has already
been declared" in the browser console of every page. This drops exact duplicates
(same file or inline body, same attributes) before the page is rendered.
"""

from __future__ import annotations


def _key(script) -> tuple:
    return (script.filename or "", tuple(sorted(script.attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    # After the extensions that add scripts per page (default priority 500).
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
