"""Sphinx configuration of the course's book (`make book`, tools/book.py).

tools/book.py copies this folder and the executed chapters into a source folder, writes
_book.json beside this file (the run's commit, mode, date and machine) and runs Sphinx on it:
MyST-NB reads the notebooks without executing them (the run already did), the book theme lays
them out. Build it with tools/book.py, not with sphinx-build on docs/ (there are no chapters here).

Why this stack: it is Jupyter Book 1's own (Sphinx, MyST-NB, sphinx-book-theme) without its CLI
layer, all pure Python from PyPI, pinned in the `book` extra. Jupyter Book 2 is a Node.js
application (mystmd) that fetches its site template when it builds, which an offline lab or CI
cannot; MkDocs with mkdocs-jupyter would need a second markup and link checker. With -W, Sphinx
fails on a broken cross-reference, so a page moved or renamed is caught at build time.
"""
import json
from pathlib import Path

RUN = json.loads((Path(__file__).parent / "_book.json").read_text(encoding="utf-8"))

project = "Transfer learning in computer vision"
author = "the course's authors"
html_title = "Transfer learning in computer vision"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]  # the chapters' $...$ formulas, by MathJax
myst_heading_anchors = 3          # README-style links to a section (#settings) resolve
nb_execution_mode = "off"         # the outputs are those of the run; nothing executes here
nb_merge_streams = True           # one block per cell for its printed lines
smartquotes = False              # a measured value reads as the run printed it (the ledger test matches it)
html_theme = "sphinx_book_theme"
html_copy_source = False          # no _sources/ copy of every notebook: half the site's size
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "extra_footer": f"<p class=\"course-stamp\">{RUN['stamp']}</p>",
}
# misc.highlighting_failure: chapter 08 draws its deployment loop as a ```mermaid block, which
# JupyterLab and the book show as its text (no Pygments lexer, no diagram script from a CDN).
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]
