"""Open a run report in headless Chromium and save a screenshot: does the page really render?

    python scripts/screenshot_report.py runs/NAME --out report.png
    python scripts/screenshot_report.py page.html --out page.png --height 6000

``RUN_OR_HTML`` is a run directory (its ``report.html``) or an HTML file. Chromium (Debian's
``chromium`` package, or ``--browser``) runs headless, without a sandbox (containers often
run as root), with every host name resolving nowhere and a dead proxy, so the page loads
nothing from the network: a self-contained report looks complete, one that is not shows
broken pictures. The screenshot is ``--width`` x ``--height`` pixels from the top of the
page. Not a dependency of striate: a tool for checking reports by eye, and for the tests
when a browser is installed. Exit code 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser(explicit: str | None = None) -> str | None:
    """The path of a Chromium-like browser, or None."""
    for name in (explicit,) if explicit else BROWSERS:
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def report_file(run_or_html: str | Path) -> Path:
    """``RUN/report.html`` for a run directory, or the HTML file itself."""
    path = Path(run_or_html)
    if path.is_dir():
        path = path / "report.html"
        if not path.is_file():
            raise ValueError(f"{run_or_html} has no report.html; run `striate report` first")
    elif not path.is_file():
        raise ValueError(f"{run_or_html} is neither a run directory nor an HTML file")
    return path.resolve()


def screenshot(
    page: Path,
    out: Path,
    width: int = 1280,
    height: int = 4000,
    browser: str | None = None,
    timeout: float = 90.0,
) -> Path:
    """Render ``page`` in headless Chromium and write a PNG screenshot to ``out``."""
    found = find_browser(browser)
    if found is None:
        raise ValueError("no Chromium found (install Debian's `chromium`, or pass --browser)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="striate-chromium-") as profile:
        command = [
            found,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ValueError(f"the browser took longer than {timeout:.0f} s") from None
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"the browser failed (exit {done.returncode}): {last}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_or_html", metavar="RUN_OR_HTML")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--browser", help="browser executable (default: chromium on PATH)")
    args = parser.parse_args(argv)
    try:
        png = screenshot(
            report_file(args.run_or_html), Path(args.out), args.width, args.height, args.browser
        )
    except ValueError as exc:
        print(f"screenshot_report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
