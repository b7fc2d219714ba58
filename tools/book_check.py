"""`make book-test`: the built book (`make book`) opened from disk in headless Chromium, checked
the way a reader sees it.

    .venv/bin/python tools/book_check.py [--site build/book/html] [--screenshots DIR]

Opens every page of the site through file:// (no server: the book must work from a folder) in
Debian's Chromium driven by Playwright (tools/browser_check.py's set-up) and checks:

- every chapter of the run finished in it and has its page, and each shows as many figures (images in cell outputs,
  each loaded: a non-zero natural width) as the student's view of the executed notebook holds;
- no error output (a traceback) on any chapter page, and no JavaScript error on any page (BENIGN
  lists the known ones, with the reason);
- a chapter whose run saved its widgets' state carries it (drawn by the widget manager, from a CDN);
- every internal link and image points at a file of the site, and a link's #anchor at an element
  of its page;
- every page carries the stamp of the commit and mode that produced it;
- the ledger page lists every record of the run's ledger files (claim and measured value in a row).

Prints one line per page (figures found / expected), then the failures; exit status 1 on any.
With --screenshots, a full-page PNG of each page goes there.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from browser_check import CHROMIUM  # noqa: E402  (the same Chromium as the browser test)
from course_utils import ledger  # noqa: E402

# Console messages known to be harmless, each with the reason. Everything else fails.
BENIGN: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^Failed to load resource: net::ERR_[A-Z_]+ \(https://(cdnjs\.cloudflare\.com/ajax/libs/require\.js/|"
                r"cdn\.jsdelivr\.net/npm/@jupyter-widgets/html-manager@)"),
     "a chapter with widgets loads the widget manager that draws their saved state from a CDN (MyST-NB's "
     "default); without internet the page shows no widget there, and the chapter's figures show the same "
     "function"),
    (re.compile(r"^Failed to load resource: net::ERR_[A-Z_]+ \(https://cdn\.jsdelivr\.net/npm/mathjax@"),
     "the chapters' formulas are typeset by MathJax from a CDN (Sphinx's default); without internet they "
     "show as their TeX source"),
    (re.compile(r"^Got invalid theme mode: \. Resetting to auto\. \(file://\S+/_static/scripts/pydata-sphinx-theme\.js"),
     "pydata-sphinx-theme (under the book theme) logs it on the first page opened, before the reader "
     "has chosen light or dark: it then follows the system's choice"),
]

# What the page shows, read in the browser: figures in cell outputs, errors, links, ids, stamp.
READ_PAGE = """() => {
  const outputs = [...document.querySelectorAll('.cell_output img')];
  return {
    figures: outputs.length,
    unloaded: outputs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    tracebacks: [...document.querySelectorAll('.cell_output .traceback, .cell_output .output.error')]
                 .map(e => e.innerText.slice(0, 200)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    images: [...document.querySelectorAll('img[src]')].map(i => i.src),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    text: document.body.innerText,
    rows: [...document.querySelectorAll('article table tr')].map(r => r.innerText),
    widget_state: document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]').length,
  };
}"""


def benign_reason(message: str) -> str | None:
    return next((reason for pattern, reason in BENIGN if pattern.search(message)), None)


def internal_target(url: str, site: Path) -> tuple[Path, str] | None:
    """(file, anchor) for a link into the site, None for one that leaves it (http, mailto, or a
    file outside the site folder)."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    address, anchor = urldefrag(url)
    path = Path(unquote(urlparse(address).path))
    try:
        path.resolve().relative_to(site.resolve())
    except ValueError:
        return None
    return path.resolve(), anchor


def link_problems(pages: dict[Path, dict], site: Path) -> list[str]:
    """Every internal link or image whose file does not exist, or whose #anchor is on no element
    of its (visited) page."""
    problems = []
    for page, seen in pages.items():
        for url in seen["links"] + seen["images"]:
            target = internal_target(url, site)
            if target is None:
                continue
            path, anchor = target
            name = page.relative_to(site)
            if not path.exists():
                problems.append(f"{name}: broken link {path.relative_to(site.resolve())}")
            elif anchor and path.suffix == ".html" and path in pages and anchor not in pages[path]["ids"]:
                problems.append(f"{name}: no #{anchor} on {path.relative_to(site.resolve())}")
    return sorted(set(problems))


def ledger_problems(rows: list[str], claims: list[ledger.Record]) -> list[str]:
    """The records of the run that no table row of the ledger page shows (claim and measured)."""
    missing = []
    for c in claims:
        if not any(c.claim in row and c.measured in row for row in rows):
            missing.append(f"ledger page: no row for chapter record '{c.claim}' (measured {c.measured})")
    return missing


def check(site: Path, screenshots: Path | None) -> list[str]:
    from playwright.sync_api import sync_playwright  # the `browser` extra (make .venv/.browser)
    facts_file = site / "book.json"
    if not facts_file.exists():
        return [f"{facts_file} is missing: build the book first (make book, or make book BOOK_ARGS=--fast)"]
    facts = json.loads(facts_file.read_text(encoding="utf-8"))
    stamp = facts["stamp"]
    failures: list[str] = []
    benign: set[str] = set()
    pages: dict[Path, dict] = {}
    # The site's pages: not the theme's template fragments under _static/.
    html_files = sorted(p.resolve() for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    if screenshots:
        screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        js_errors: list[str] = []
        page.on("pageerror", lambda error: js_errors.append(str(error)))
        page.on("console", lambda message: js_errors.append(
            message.text + (f" ({message.location['url']})" if message.location.get("url") else ""))
            if message.type == "error" else None)
        for path in html_files:
            js_errors.clear()
            page.goto(path.as_uri(), wait_until="load")
            seen = page.evaluate(READ_PAGE)
            pages[path] = seen
            name = str(path.relative_to(site.resolve()))
            failures += [f"{name}: JavaScript error: {e[:200]}" for e in js_errors if not benign_reason(e)]
            benign.update(f"{e} ({benign_reason(e)})" for e in js_errors if benign_reason(e))
            if name not in ("genindex.html", "search.html") and stamp not in seen["text"]:
                failures.append(f"{name}: the stamp of its commit and mode is missing")
            if screenshots:
                page.screenshot(path=str(screenshots / (name.replace("/", "_") + ".png")), full_page=True)
        browser.close()
    for stem, chapter in facts["chapters"].items():
        path = (site / "chapters" / f"{stem}.html").resolve()
        if path not in pages:
            failures.append(f"chapter {stem}: no page chapters/{stem}.html")
            continue
        seen = pages[path]
        print(f"chapters/{stem}.html: {seen['figures']} figure(s), the executed notebook's student view has "
              f"{chapter['figures']} (the run, solutions included: {chapter['figures_run']})")
        if seen["figures"] != chapter["figures"]:
            failures.append(f"chapter {stem}: {seen['figures']} figure(s) on the page, {chapter['figures']} in the notebook")
        if chapter.get("status", "ok") != "ok":
            failures.append(f"chapter {stem}: {chapter['status']} in the run, so its page is incomplete")
        failures += [f"chapter {stem}: figure not loaded: {src}" for src in seen["unloaded"]]
        failures += [f"chapter {stem}: error output: {text}" for text in seen["tracebacks"]]
        if chapter.get("widgets") and not seen["widget_state"]:
            failures.append(f"chapter {stem}: the run saved its widgets' state, the page does not carry it")
        failures += [f"chapter {stem}: the executed notebook has an error: {e}" for e in chapter["errors"]]
    run = Path(facts["run"])
    claims = [c for stem in facts["chapters"] for c in ledger.read(run / f"{stem[:2]}.jsonl")]
    ledger_page = (site / "ledger.html").resolve()
    if ledger_page not in pages:
        failures.append("no ledger page (ledger.html)")
    else:
        failures += ledger_problems(pages[ledger_page]["rows"], claims)
        print(f"ledger.html: {len(claims)} record(s) of the run in {run}")
    failures += link_problems(pages, site.resolve())
    print(f"{len(pages)} page(s) opened")
    for message in sorted(benign):
        print(f"benign: {message}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "build" / "book" / "html")
    parser.add_argument("--screenshots", type=Path, help="write a full-page PNG of each page here")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"FAIL: no Chromium at {CHROMIUM}: install it (Debian: apt-get install chromium)")
        return 1
    start = time.monotonic()
    failures = check(args.site, args.screenshots)
    print(f"checked in {time.monotonic() - start:.1f} s")
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for failure in failures:
            print(f"- {failure}")
        return 1
    print("every page of the book renders: figures, links, stamps and the ledger as the run made them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
