"""One self-contained HTML page per run: ``striate report RUN`` writes ``RUN/report.html``.

The page holds what a person wants to see of a run, with every picture embedded (base64
``data:`` URIs, inline CSS, no network), so the single file can be mailed::

    from striate.apps.report import report
    path = report("runs/lenet5-digits-...")          # RUN/report.html

Sections: the final metrics, the training curves (the run's ``curves.png``, or redrawn from
the metrics log), then what suits the task --

* image classification: first-layer filters, the confusion matrix (``evaluate`` is run on
  the test split when the run has no evaluation yet) and the most confidently wrong images
  (:mod:`striate.apps.analysis`);
* text generation: a few samples, the gate and cell activity of a char-LSTM over held-out
  text (:func:`striate.apps.recurrent_analysis.gate_activity`) and its gradient norms
  through time;
* any other kind: what the run holds --

then every ``eval*.json`` found in the run, any further PNG the run holds, and the
configuration. A report in the run's own folder (the default) leaves every picture there as
a PNG too; one written elsewhere (``--out DIR/x.html``) is the HTML alone -- its pictures are
drawn in a temporary folder that is removed afterwards, so no file of the user's beside it
(a ``curves.png`` of their own) is overwritten, and a failure leaves nothing partial there.
A picture that cannot be made (say the test data is not on this machine) becomes a one-line
note in the page.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from striate import __version__
from striate.artifacts import html
from striate.artifacts.metrics_log import read_metrics
from striate.artifacts.recurrent_plots import plot_metric_curves
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir, open_run
from striate.atomic import atomic_path, ensure_parent, resolve_target
from striate.errors import StriateError

__all__ = ["report"]

IMAGE_KIND, TEXT_KIND = "image-classification", "text-generation"
_SAMPLES, _SAMPLE_LENGTH, _PASSAGE = 3, 300, 300


class _Page:
    """The report being assembled: sections of HTML and the PNG files they embed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sections: list[str] = []
        self.shown: set[Path] = set()

    def beside(self, png: Path) -> Path:
        """The PNG as a file beside the report (copied there if it lies elsewhere)."""
        png = Path(png)
        target = self.folder / png.name
        if png.resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(png, tmp)
        self.shown.add(png.resolve())
        self.shown.add(target.resolve())
        return target

    def figure(self, png: Path, caption: str) -> str:
        return html.figure(self.beside(png), caption)

    def add(self, title: str, body: str) -> None:
        self.sections.append(html.section(title, body))


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _attempt(what: str, make: Callable[[], str]) -> str:
    """The HTML ``make`` returns, or a one-line note saying why ``what`` is missing."""
    try:
        return make()
    except StriateError as exc:
        return _note(f"{what}: not available ({exc})")


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as ``a.b`` keys; long lists shortened."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}{key}.")
        return
    if isinstance(data, list) and len(data) > 12:
        data = f"[{len(data)} items] " + json.dumps(data[:6])[:-1] + ", ...]"
    elif isinstance(data, list):
        data = json.dumps(data)
    yield prefix[:-1], data


def _records(run: RunDir) -> list[dict[str, Any]]:
    for name in ("metrics.jsonl", "metrics.csv"):
        if (run.path / name).is_file():
            return read_metrics(run.path / name)
    return []


def _header(run: RunDir, config: dict[str, Any], kind: str) -> str:
    facts = [("kind", kind)]
    for key in ("model", "cell", "layers", "hidden", "data", "tbptt"):
        if key in config and not isinstance(config[key], dict):
            facts.append((key, config[key]))
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<h1>Run {html.escape(run.path.name)}</h1>"
        f'<p class="note">report by striate {html.escape(__version__)}, {when}</p>'
        + html.key_value_table(facts)
    )


def _metrics_section(page: _Page, records: list[dict[str, Any]]) -> None:
    rows: list[tuple[str, Any]] = []
    for phase in ("val", "train"):
        last = next((r for r in reversed(records) if r.get("phase") == phase), None)
        if last is None:
            continue
        rows.append((f"{phase}: step", last.get("step")))
        skip = {"phase", "step", "epoch"}
        rows += [(f"{phase}: {k}", v) for k, v in last.items() if k not in skip]
    body = html.key_value_table(rows) if rows else _note("no metrics logged")
    page.add("Final metrics", body)


def _curves_section(page: _Page, run: RunDir, records: list[dict[str, Any]]) -> None:
    drawn = run.path / "curves.png"
    if drawn.is_file():
        page.add("Training curves", page.figure(drawn, "loss (and accuracy) against step"))
    elif records:
        png = plot_metric_curves(records, page.folder / "curves.png")
        page.add("Training curves", page.figure(png, "redrawn from the metrics log"))
    else:
        page.add("Training curves", _note("no metrics log in this run"))


def _eval_files(run: RunDir) -> list[Path]:
    return sorted(run.path.glob("eval*.json"))


def _image_sections(page: _Page, run: RunDir, runs_dir: str | Path) -> None:
    from striate.apps import analysis
    from striate.apps import image_classification as ic

    page.add(
        "First-layer filters",
        _attempt(
            "filters",
            lambda: page.figure(
                analysis.filters(run.path, page.folder / "filters.png", runs_dir),
                "the first convolution's filters",
            ),
        ),
    )
    evals = _eval_files(run)
    if not evals:

        def evaluate() -> str:
            ic.evaluate(run.path, "test", runs_dir=runs_dir)
            return ""

        message = _attempt("evaluation on the test split", evaluate)
        evals = _eval_files(run)
        if message:
            page.add("Confusion matrix", message)
    for path in evals:
        split = json.loads(path.read_text(encoding="utf-8")).get("split", "test")
        confusion = run.path / f"confusion-{split}.png"
        if confusion.is_file():
            page.add(
                f"Confusion matrix ({split})",
                page.figure(confusion, f"rows: true class, columns: predicted ({split} split)"),
            )

        def worst(split: str = split) -> str:
            png = analysis.worst_errors(
                run.path, split, 16, page.folder / f"worst-errors-{split}.png", runs_dir
            )
            return page.figure(png, f"the most confidently wrong {split} images, with their top-5")

        page.add(f"Most confident errors ({split})", _attempt("worst errors", worst))


def _text_sections(page: _Page, run: RunDir, runs_dir: str | Path) -> None:
    from striate.apps import recurrent_analysis as ra
    from striate.apps import text_generation as tg

    samples = [
        "".join(tg.sample(run.path, "\n", 0.8, 40, _SAMPLE_LENGTH, seed, runs_dir))
        for seed in range(_SAMPLES)
    ]
    body = "".join(f'<pre class="sample">{html.escape(s.strip())}</pre>' for s in samples)
    page.add("Samples", _note("temperature 0.8, top-40, primed with a newline") + body)

    model, _, _ = tg.load_text_model(run.path, runs_dir)
    if model.rnn.cell == "lstm":
        passage = ra.held_out_text(run.path, runs_dir)
        source = "held-out text"
        if not passage:
            passage, source = samples[0], "the first sample (the training text is not here)"
        start = passage.find("\n") + 1 if "\n" in passage[:200] else 0
        passage = passage[start:].lstrip("\n")[:_PASSAGE]

        def gate_body() -> str:
            activity = ra.gate_activity(
                run.path, passage, png=page.folder / "gates.png", runs_dir=runs_dir, count=4
            )
            caption = "the same units over the first characters (C drawn as tanh C)"
            return (
                _note(f"{len(activity.text)} characters of {source}; units picked automatically")
                + activity.body
                + page.figure(activity.png, caption)
            )

        page.add("Gate and cell activity", _attempt("gate activity", gate_body))
    else:
        page.add(
            "Gate and cell activity",
            _note(f"gates are drawn for LSTMs; this is a {model.rnn.cell!r}"),
        )

    def gradient_body() -> str:
        png, curves = ra.vanishing_gradients(
            cells=(), run=run.path, lag=150, batch=8, out=page.folder / "gradients.png",
            runs_dir=runs_dir,
        )  # fmt: skip
        (curve,) = curves.values()
        at = {lag: curve.at(lag) for lag in (0, 25, 50, 100, 150)}
        numbers = ", ".join(f"lag {lag}: {value:.2e}" for lag, value in at.items())
        caption = "mean ‖∂L_t/∂h_(t−lag)‖ of the trained model, L = cross-entropy at t"
        return page.figure(png, caption) + _note(numbers)

    page.add("Gradient through time", _attempt("gradient norms", gradient_body))


def _eval_section(page: _Page, run: RunDir) -> None:
    for path in _eval_files(run):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            page.add(path.name, _note("not readable JSON"))
            continue
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("confusion", "confusion_png")}
        page.add(f"Evaluation: {path.name}", html.key_value_table(_flatten(data)))


def _other_figures(page: _Page, run: RunDir) -> None:
    found = sorted({*run.path.glob("*.png"), *run.path.glob("analysis/*.png")})
    names = {p.name for p in page.shown}  # analysis/filters.png is the filters.png shown
    rest = [p for p in found if p.resolve() not in page.shown and p.name not in names]
    if rest:
        body = "".join(page.figure(p, str(p.relative_to(run.path))) for p in rest)
        page.add("Other figures in the run", body)


def report(
    run: str | Path, out: str | Path | None = None, runs_dir: str | Path = DEFAULT_ROOT
) -> Path:
    """Write the run's HTML report (default ``RUN/report.html``) and return its path.

    Every picture is embedded; in the run's folder it is also kept as a PNG, elsewhere the
    HTML is the only file written (see the module docstring, which also says what each
    kind of run shows).
    """
    found = open_run(run, runs_dir)
    config = found.read_config() if found.config_file.is_file() else {}
    kind = config.get("kind", "unknown")
    target = Path(out) if out is not None else found.path / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise StriateError(f"the report is an HTML file, not {target.name!r}")
    ensure_parent(target)
    target = resolve_target(target)
    if target.parent.resolve() == found.path.resolve():
        return _write_report(found, config, kind, target, target.parent, runs_dir)
    with tempfile.TemporaryDirectory(prefix="striate-report-") as pictures:
        return _write_report(found, config, kind, target, Path(pictures), runs_dir)


def _write_report(
    found: RunDir,
    config: dict[str, Any],
    kind: str,
    target: Path,
    pictures: Path,
    runs_dir: str | Path,
) -> Path:
    """Assemble the page with its pictures drawn into ``pictures`` and write ``target``."""
    page = _Page(pictures)
    records = _records(found)
    _metrics_section(page, records)
    _curves_section(page, found, records)
    if kind == IMAGE_KIND:
        _image_sections(page, found, runs_dir)
    elif kind == TEXT_KIND:
        _text_sections(page, found, runs_dir)
    _eval_section(page, found)
    _other_figures(page, found)
    page.add("Configuration", html.key_value_table(_flatten(config)) if config else _note("none"))
    body = _header(found, config, kind) + "\n".join(page.sections)
    return html.write_html(target, html.page(f"striate report · {found.path.name}", body))
