"""Screenshots of the built site at desktop and phone widths, for a person to look at.

Usage (run by `make screenshots`): python tests/site/screenshots.py _build/html screenshots

Takes the landing page, the first chapter and the first exercise page that exist, each at
1280x800 and 390x844, and writes <name>-<width>.png into the output folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urljoin

from builtsite import DESKTOP, PHONE, WAIT_FOR_MATHJAX, first_page, launch_chromium, serve


def pages_to_shoot(build: Path) -> dict[str, str]:
    """{name: path inside the build} for the landing page, one chapter and one exercise."""
    chosen = {"landing": "book/index.html"}

    def built(page) -> bool:
        return (build / page.html).is_file()

    chapter = first_page(lambda page: page.is_chapter and built(page)) or first_page(
        lambda page: page.docname.startswith("book/") and page.docname != "book/index"
    )
    exercise = first_page(lambda page: page.is_exercise and built(page))
    if chapter:
        chosen["chapter"] = chapter.html
    if exercise:
        chosen["exercise"] = exercise.html
    return chosen


def main(build: Path, out: Path) -> int:
    if not (build / "index.html").is_file():
        print(f"no built site in {build}: run `make book` first", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with serve(build) as base_url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for viewport, mobile in ((DESKTOP, False), (PHONE, True)):
            context = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
            tab = context.new_page()
            for name, path in pages_to_shoot(build).items():
                tab.goto(urljoin(base_url, path), wait_until="load")
                tab.evaluate(WAIT_FOR_MATHJAX)
                tab.wait_for_load_state("networkidle")
                target = out / f"{name}-{viewport['width']}.png"
                tab.screenshot(path=str(target))
                print(f"{target}  ({path})")
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
