"""`make browser-test`: every chapter run in JupyterLab in a real browser, the way a student runs it.

    .venv/bin/python tools/browser_check.py [--chapters 01,05] [--timeout 900] [--report browser-report]
                                            [--target lab-solutions] [--screenshots] [--serve DIR]

Starts the course with `make lab` (or --target, e.g. lab-solutions; fast mode, the local data mirror, a free loopback port and a
token through LAB_ARGS), opens each chapter of the folder that `make lab` serves in headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright), runs Run > Run All Cells and
checks what a student would see:

- the kernel is the course's: display name "Python 3 (course)", running this venv's Python;
- every code cell ran to the end (no `[*]` left, none skipped) with no error output, except in a
  student copy the exercise placeholders, whose errors must be their "replace this line with
  your solution" / "Not done yet" messages (Run All stops there; the test then runs the cells
  below, as a student would);
- in a student copy, every exercise check run on a placeholder says "Not done yet";
- every widget rendered (no "Loading widget...", "Error displaying widget" or broken-widget
  icon, and each widget output drew something), and no widget label is cut off;
- no JavaScript error in the console or the page (the few benign ones are listed in BENIGN);
- a cell that calls plt.show() shows an image, and a chapter that draws shows at least one;
- no "get notified about official Jupyter news?" pop-up (the course's lab setting, lab/).

Prints one line per chapter with its time, then the failures, each naming the cell (index and
first line); a screenshot of each failing chapter goes to the report folder. Exit status 1 on
any failure. Notebooks are not saved (autosave is off in the test's own settings folder).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CHROMIUM = "/usr/bin/chromium"
KERNEL_DISPLAY_NAME = "Python 3 (course)"
CHAPTER = re.compile(r"^\d\d_.*\.ipynb$")

# Errors a student copy shows on purpose: the placeholder line of an exercise, and its check.
EXPECTED_ERRORS = [
    ("NotImplementedError", re.compile(r"replace this line with your solution")),
    ("", re.compile(r"^Not done yet")),  # ExerciseError / NotDone from course_utils.exercises
]
# Browser console errors known to be harmless, each with the reason. Everything else fails.
# None so far: a full run of the eight chapters (JupyterLab 4.6.6, Chromium 156) logs no error.
BENIGN: list[tuple[re.Pattern, str]] = []
# Code that draws a figure a student should see (a plt.show() call in a line that is not a comment).
DRAWS = re.compile(r"^[^#\n]*\bplt\.show\(", re.MULTILINE)
# An exercise's check cell (course_utils.exercises): on a student copy's placeholder it must say "Not done yet".
CHECK = re.compile(r"^exercises\.check_", re.MULTILINE)
NEWS_POPUP = "official Jupyter news"


@dataclass
class Failure:
    chapter: str
    what: str
    cell: int | None = None
    first_line: str = ""

    def __str__(self) -> str:
        where = f" cell {self.cell} `{self.first_line}`" if self.cell is not None else ""
        return f"{self.chapter}{where}: {self.what}"


@dataclass
class Result:
    chapter: str
    seconds: float = 0.0
    summary: str = ""
    failures: list[Failure] = field(default_factory=list)
    benign: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- pure logic (unit-tested)

def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return (lines[0][:80] if lines else "").strip()


def is_student_copy(cells: list[dict]) -> bool:
    return any("replace this line with your solution" in c["source"] for c in cells if c["cell_type"] == "code")


def expected_error(output: dict, student: bool) -> bool:
    """Whether an error output is an exercise placeholder's message (only ever in a student copy)."""
    if not student or output.get("output_type") != "error":
        return False
    return any((not ename or output.get("ename") == ename) and pattern.search(output.get("evalue", ""))
               for ename, pattern in EXPECTED_ERRORS)


def cell_problems(cells: list[dict], student: bool) -> list[tuple[int, str]]:
    """(cell index, what is wrong) for every code cell that ran into an error, did not run, or
    should have drawn a figure and did not. Cells left unrun below an error make one entry."""
    problems, first_error = [], None
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not cell["source"].strip():
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for out in errors:
            if not expected_error(out, student):
                problems.append((i, f"error output {out.get('ename')}: {out.get('evalue', '')[:300]}"))
                first_error = i if first_error is None else first_error
        if student and CHECK.search(cell["source"]) and cell.get("execution_count") is not None and not any(
                expected_error(o, student) for o in errors):
            problems.append((i, "an exercise check on the placeholder did not say \"Not done yet\""))
        if errors:
            continue
        if cell.get("execution_count") is None:
            if first_error is None:
                problems.append((i, "did not run (no execution count)"))
            continue
        if DRAWS.search(cell["source"]) and not any(
                "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                for o in cell.get("outputs", [])):
            problems.append((i, "calls plt.show() but shows no figure"))
    if first_error is not None:
        unrun = [i for i, c in enumerate(cells) if i > first_error and c["cell_type"] == "code"
                 and c["source"].strip() and c.get("execution_count") is None]
        if unrun:
            problems.append((unrun[0], f"this and {len(unrun) - 1} more cell(s) below did not run: "
                                       f"Run All stopped at the error of cell {first_error}"))
    return problems


def benign_reason(message: str) -> str | None:
    for pattern, reason in BENIGN:
        if pattern.search(message):
            return reason
    return None


def served_root(log: str) -> Path | None:
    """The folder a Jupyter server serves, from its log."""
    match = re.search(r"Serving notebooks from local directory: (.+)", log)
    return Path(match.group(1).strip()) if match else None


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """`make lab` on a loopback port with a token; its own settings and workspace folders."""

    def __init__(self, report: Path, serve: Path | None, target: str = "lab"):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="browser-check-")
        user_settings = Path(self.tmp.name, "user-settings")
        docmanager = user_settings / "@jupyterlab" / "docmanager-extension"
        docmanager.mkdir(parents=True)
        (docmanager / "plugin.jupyterlab-settings").write_text('{"autosave": false}')  # never write notebooks
        # The test's own user settings and workspaces: a developer's own never change the result.
        env = dict(os.environ, COURSE_FAST="1", PYTHONUNBUFFERED="1",
                   COURSE_DATA_MIRROR=os.environ.get("COURSE_DATA_MIRROR", str(ROOT.parent / "shared" / "data")),
                   JUPYTERLAB_SETTINGS_DIR=str(user_settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(Path(self.tmp.name, "workspaces")))
        args = [f"--no-browser --ServerApp.ip=127.0.0.1 --port={self.port} --ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token} --LabApp.expose_app_in_browser=True"]
        if serve:  # testing the test: another folder, served as make lab would (the venv's kernel first)
            env["JUPYTER_PATH"] = str(VENV / "share" / "jupyter")
            command = [str(VENV / "bin" / "jupyter"), "lab", f"--notebook-dir={serve}", *" ".join(args).split()]
            command += ["--allow-root"] if os.getuid() == 0 else []
        else:
            # The environment under test is the one there: never reinstall it (-o: take the stamp as is).
            keep = ["-o", ".venv/.installed"] if (VENV / ".installed").exists() else []
            command = ["make", "--no-print-directory", *keep, target, f"LAB_ARGS={' '.join(args)}"]
        self.log_path = report / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`make lab` exited with {self.proc.returncode}; see {self.log_path}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within {timeout:.0f} s; see {self.log_path}")

    def root(self) -> Path | None:
        return served_root(self.log_path.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


# ---------------------------------------------------------------- the browser

CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.model.toJSON().cells.map(c => ({
    cell_type: c.cell_type, execution_count: c.execution_count ?? null, outputs: c.outputs || [],
    source: Array.isArray(c.source) ? c.source.join('') : c.source}));
}"""

KERNEL_JS = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session.kernel;
  let printed = '';
  const future = kernel.requestExecute({code: 'import sys; print(sys.prefix)', silent: false, store_history: false});
  future.onIOPub = msg => { if (msg.header.msg_type === 'stream') printed += msg.content.text; };
  await future.done;
  return {display: panel.sessionContext.kernelDisplayName, name: kernel.name, prefix: printed.trim()};
}"""

BUSY_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const running = [...document.querySelectorAll('.jp-InputPrompt')].filter(p => p.textContent.includes('*')).length;
  return {running, status: kernel ? kernel.status : 'none'};
}"""

# Per output area: widgets that never rendered, widget labels cut off, images that did not load.
DOM_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  return cells.map((cell, index) => {
    const text = [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n');
    const cut = [...cell.querySelectorAll('.widget-label, .widget-label-basic')]
      .filter(l => l.offsetParent !== null && l.scrollWidth > l.clientWidth + 1).map(l => l.textContent);
    const images = [...cell.querySelectorAll('.jp-OutputArea-output img')];
    return {index, loading: /Loading widget/.test(text), broken: /Error displaying widget/.test(text),
            widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets:not(:has(.jupyter-widgets-error-widget))').length,
            failed: cell.querySelectorAll('.jupyter-widgets-error-widget').length,
            cut, images: images.length, unloaded: images.filter(i => !(i.complete && i.naturalWidth > 0)).length};
  });
}"""


def click_menu(page, menu: str, item: str) -> None:
    page.locator("#jp-menu-panel, .lm-MenuBar").get_by_text(menu, exact=True).first.click()
    page.locator(".lm-Menu").get_by_text(item, exact=True).first.click()


def wait_idle(page, deadline: float) -> bool:
    """Wait until no cell shows [*] and the kernel is idle, three polls in a row."""
    calm = 0
    while time.monotonic() < deadline:
        state = page.evaluate(BUSY_JS)
        calm = calm + 1 if state["running"] == 0 and state["status"] == "idle" else 0
        if calm >= 3:
            return True
        time.sleep(1)
    return False


def select_cell(page, index: int, tries: int = 20) -> None:
    """Make cell `index` the active one and wait until it stays so: when Run All stops, JupyterLab
    moves the selection by itself a moment after the kernel is idle, which can undo ours."""
    active = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
    for _ in range(tries):
        page.evaluate(f"() => {{ window.jupyterapp.shell.currentWidget.content.activeCellIndex = {index}; }}")
        page.wait_for_timeout(300)
        if page.evaluate(active) == index:
            page.wait_for_timeout(300)
            if page.evaluate(active) == index:  # still ours a moment later
                return


def check_chapter(browser, lab: Lab, path: str, timeout: float, report: Path, always_shoot: bool = False) -> Result:
    name = Path(path).stem
    result = Result(name)
    fail = lambda what, cell=None, line="": result.failures.append(Failure(name, what, cell, line))
    console: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda msg: msg.type == "error" and console.append(f"console: {msg.text}"))
    page.on("pageerror", lambda err: console.append(f"page error: {err}"))
    start = time.monotonic()
    deadline = start + timeout
    cells: list[dict] = []
    try:
        page.goto(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.content"
                               " && window.jupyterapp.shell.currentWidget.content.model",
                               timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        kernel = page.evaluate(KERNEL_JS)
        if kernel["display"] != KERNEL_DISPLAY_NAME:
            fail(f"kernel is {kernel['display']!r} ({kernel['name']}), not {KERNEL_DISPLAY_NAME!r}")
        if Path(kernel["prefix"]).resolve() != VENV.resolve():
            fail(f"kernel runs the Python of {kernel['prefix']!r}, not the course's {VENV}")
        student = is_student_copy(page.evaluate(CELLS_JS))
        click_menu(page, "Run", "Run All Cells")
        resumed = None
        while True:
            if not wait_idle(page, deadline):
                fail(f"still running after {timeout:.0f} s (cells showing [*] or a busy kernel)")
                break
            cells = page.evaluate(CELLS_JS)
            # Run All stops at an error. Past an exercise placeholder's, go on with the cells below,
            # as a student would; past any other error, stop: it is a failure.
            errors = [i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c["outputs"])]
            if not (student and errors and all(expected_error(o, student) for o in cells[errors[-1]]["outputs"]
                                                if o.get("output_type") == "error")):
                break
            after = [i for i, c in enumerate(cells) if i > errors[-1] and c["cell_type"] == "code"
                     and c["source"].strip() and c["execution_count"] is None]
            if not after:
                break
            if after[0] == resumed:
                fail("Run Selected Cell and All Below did not run the cell below a placeholder", after[0],
                     first_line(cells[after[0]]["source"]))
                break
            resumed = after[0]
            select_cell(page, resumed)
            # JupyterLab disables "Run Selected Cell and All Below" on the last cell.
            click_menu(page, "Run", "Run Selected Cell" if resumed == len(cells) - 1 else "Run Selected Cell and All Below")
        for index, what in cell_problems(cells, student):
            fail(what, index, first_line(cells[index]["source"]))
        dom = page.evaluate(DOM_JS)
        for cell in dom:
            i = cell["index"]
            line = first_line(cells[i]["source"]) if i < len(cells) else ""
            if cell["loading"]:
                fail('widget never rendered ("Loading widget...")', i, line)
            if cell["failed"]:
                fail(f"{cell['failed']} widget(s) failed to render (the broken-widget icon)", i, line)
            if cell["broken"]:
                fail('widget failed ("Error displaying widget")', i, line)
            if cell["cut"]:
                fail(f"widget label(s) cut off: {cell['cut']}", i, line)
            views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                        for o in (cells[i]["outputs"] if i < len(cells) else []))
            if views and not cell["widgets"] and not cell["loading"] and not cell["broken"] and not cell["failed"]:
                fail(f"{views} widget output(s) drew nothing", i, line)
            if cell["unloaded"]:
                fail(f"{cell['unloaded']} image(s) did not load", i, line)
        if any(DRAWS.search(c["source"]) and c["execution_count"] is not None for c in cells) \
                and not sum(c["images"] for c in dom):
            fail("the chapter draws figures but no image is shown")
        code = sum(c["cell_type"] == "code" and bool(c["source"].strip()) for c in cells)
        ran = sum(c["cell_type"] == "code" and bool(c["source"].strip()) and c["execution_count"] is not None
                  for c in cells)
        placeholders = sum(expected_error(o, student) for c in cells for o in c["outputs"])
        result.summary = (f"{ran}/{code} cells ran, {sum(c['images'] for c in dom)} figures, "
                          f"{sum(c['widgets'] for c in dom)} widgets"
                          + (f", {placeholders} exercise placeholders" if student else ""))
        if page.get_by_text(NEWS_POPUP).count():
            fail(f'the "{NEWS_POPUP}" pop-up is shown (the course\'s lab setting is not installed)')
    except Exception as err:  # a chapter that cannot be driven is a failure of that chapter, not of the run
        fail(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    result.seconds = time.monotonic() - start
    result.failures.sort(key=lambda f: -1 if f.cell is None else f.cell)
    for message in console:
        reason = benign_reason(message)
        if reason:
            result.benign.append(f"{message[:200]} (ignored: {reason})")
        else:
            fail(f"JavaScript {message[:500]}")
    if result.failures or always_shoot:
        shot = report / f"{name}.png"
        try:
            shown = next((f.cell for f in result.failures if f.cell is not None), None)
            if shown is not None:  # the first failing cell in view, named in the file name
                page.locator(".jp-Notebook .jp-Cell").nth(shown).scroll_into_view_if_needed(timeout=5_000)
                shot = report / f"{name}-cell{shown}.png"
            page.screenshot(path=str(shot))
            print(f"  screenshot: {shot}")
        except Exception as err:
            print(f"  (no screenshot: {err})")
    try:
        for session in lab.api("/api/sessions"):
            if session["path"].endswith(Path(path).name):
                lab.api(f"/api/sessions/{session['id']}", method="DELETE")
    except Exception as err:
        print(f"  (could not shut the kernel of {name} down: {err})")
    page.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", default="", help="comma-separated prefixes, e.g. 01,05 (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per chapter (default 900)")
    parser.add_argument("--report", default="browser-report", help="folder for the log and screenshots")
    parser.add_argument("--target", default="lab", help="the make target that starts JupyterLab (default: lab)")
    parser.add_argument("--screenshots", action="store_true", help="a screenshot of every chapter, not only failing ones")
    parser.add_argument("--serve", type=Path, help="serve this folder instead of make lab's (to test the test)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright  # the `browser` extra: pip install playwright

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    for old in report.glob("*.png"):
        old.unlink()
    lab = Lab(report, args.serve.resolve() if args.serve else None, args.target)
    results: list[Result] = []
    total = time.monotonic()
    try:
        lab.wait_ready()
        root = lab.root()
        names = sorted(item["name"] for item in lab.api("/api/contents/")["content"] if CHAPTER.match(item["name"]))
        wanted = [p for p in args.chapters.split(",") if p]
        names = [n for n in names if not wanted or any(n.startswith(p) for p in wanted)]
        print(f"make lab serves {root or '?'}: {len(names)} chapter(s); server log {lab.log_path}", flush=True)
        if not names:
            print("FAIL: no chapter notebooks (NN_*.ipynb) at the root of the folder make lab serves")
            return 1
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for name in names:
                result = check_chapter(browser, lab, name, args.timeout, report, args.screenshots)
                results.append(result)
                status = "ok" if not result.failures else f"FAIL ({len(result.failures)})"
                print(f"{result.chapter:32s} {result.seconds:6.1f} s  {status:9s} {result.summary}", flush=True)
            browser.close()
    finally:
        lab.stop()
    print(f"{'total (with server start)':32s} {time.monotonic() - total:6.1f} s")
    for message in sorted({b for r in results for b in r.benign}):
        print(f"benign: {message}")
    failures = [f for r in results for f in r.failures]
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for failure in failures:
            print(f"- {failure}")
        print(f"screenshots and server log in {report}/")
        return 1
    print("every chapter ran in the browser without a problem")
    return 0


if __name__ == "__main__":
    sys.exit(main())
