"""No traceback for any input: every command, driven with generated arguments, ends with exit
code 0 or 2, at most three lines on stderr, and leaves the runs it reads as they were.

The commands and their options are read from the parser itself, so a command added later is
driven too. Values are drawn by kind: numbers of every kind (NaN, infinities, zero, negative,
beyond every limit, not numbers at all), paths of every kind (missing, a file where a folder
is expected and the reverse, symlink loops, dangling links, corrupt images), strings, and
runs: two tiny real runs trained once per session (an image classifier and a character
model) and copies of them with one file missing, truncated, of the wrong JSON shape or not
JSON at all. Options are placed anywhere between the positionals, as people type them.

CI runs a fixed, derandomized number of examples (the ``ci`` profile in tests/conftest.py);
``pytest tests/cli/test_any_input.py --hypothesis-profile=long`` searches much longer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import shutil
import socket
import traceback
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from striate.cli.main import build_parser, main
from striate.cli.values import FALLBACK_TYPES, PATH_TYPES, VALUE_TYPES

NUMBERS = [
    "0", "1", "2", "3", "-1", "-0.0", "0.5", "1.5", "-2.5", "1e-320", "1e300", "1e309",
    "nan", "NaN", "inf", "-inf", "1e3", "0x10", "+1", " 2 ", "1_0", "٣", "", " ", "abc",
    "10000000000000", str(2**63), "1" + "0" * 40, "9" * 5000,
]  # fmt: skip
STRINGS = [
    "", " ", "x", "-", "a man rides", "ünïcödé ✓", "a" * 300, "k=v", "k=[1,", "=", "lenet5",
    "resnet20", "features.c1", "0", "-1", "rnn,lstm", ",", "1,2", "../..", "rotate=1e9",
]  # fmt: skip
DEVICES = ["auto", "cpu", "cuda", "cuda:7", "mps", "tpu", ""]
# files and folders made once per session in the scratch folder (see ``scratch``)
PATHS = [
    "missing", "a-file.txt", "empty.txt", "a-folder", "loop", "loop-inside", "dangling",
    "a-file.txt/below", "digit.png", "broken.png", "images48", "out.png", "out.html",
    "new/sub/out.json", "notes.csv", "pairs.tsv",
]  # fmt: skip
DATA = [
    "digits", "nope", "", "mnist", "shapes:4", "moving-digits", "python-stdlib",
    "folder:images48", "folder:loop", "folder:loop-inside", "folder:a-file.txt",
    "folder:missing", "folder:", "notes.txt", "csv:notes.csv", "tsv:pairs.tsv", "pairs.tsv",
    "csv:missing", "coco:a-file.txt", "flickr8k:a-folder",
]  # fmt: skip
RUN_FILES = [
    "config.json", "metrics.jsonl", "checkpoints", "META", "MODEL", "OPTIMIZER",
]  # fmt: skip
DAMAGES = [
    "delete", "empty", "truncate", "list", "string", "object", "null", "not json",
    "binary", "folder", "loop",
]  # fmt: skip
# training stays a few steps on tiny data whatever the other flags say: these come last
TRAIN_LIMITS = ["--max-steps", "1", "--no-progress", "--no-compile"]
TASK_LIMITS = {
    "video": ["--clips", "6", "--val-clips", "4", "--test-clips", "4", "--frames", "3"],
    "caption": ["--limit", "6", "--beam", "1"],
    "text": ["--max-chars", "2000"],
}
NUMERIC = set(VALUE_TYPES.values()) | set(FALLBACK_TYPES.values())


# ---------------------------------------------------------------------------------------------
# the commands, read from the parser


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from _leaves(sub, (*path, name))
            return
    yield path, parser


COMMANDS = sorted(_leaves(build_parser()), key=lambda item: item[0])


def _kind(action: argparse.Action) -> str:
    if action.choices is not None:
        return "choice"
    if action.type in NUMERIC:
        return "number"
    if action.type in PATH_TYPES.values() or action.dest in ("clip", "image", "images"):
        return "path"
    if action.dest in ("run", "resume", "encoder_run", "model"):
        return "run"
    if action.dest == "data":
        return "data"
    if action.dest == "device":
        return "device"
    return "string"


# ---------------------------------------------------------------------------------------------
# session fixtures: scratch files and two tiny real runs


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (symlinks as their target text) by its SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + str(path.readlink())
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _quiet_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            err.write("Traceback (most recent call last):\n" + traceback.format_exc())
            code = -1
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _sandbox(root: Path):
    """Inside ``root``, offline, with an empty data folder: nothing is ever downloaded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("STRIATE_DATA", str(root / "no-data"))

        def offline(*args, **kwargs):
            raise OSError("tests stay offline")

        mp.setattr(socket, "getaddrinfo", offline)
        mp.setattr(socket.socket, "connect", offline)
        yield


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    """Files and folders of every kind, two trained runs, offline and with an empty data
    folder (nothing is ever downloaded)."""
    root = tmp_path_factory.mktemp("any-input")
    (root / "a-file.txt").write_text("hello\nworld\n")
    (root / "empty.txt").write_text("")
    (root / "a-folder").mkdir()
    (root / "loop").symlink_to("loop")
    (root / "loop-inside" / "a").mkdir(parents=True)
    (root / "loop-inside" / "a" / "up").symlink_to("..")
    (root / "dangling").symlink_to("nowhere")
    Image.new("L", (12, 12), 200).save(root / "digit.png")
    (root / "broken.png").write_bytes((root / "digit.png").read_bytes()[:40])
    for label in ("a", "b"):
        (root / "images48" / label).mkdir(parents=True)
        for i in range(24):
            Image.new("L", (10, 10), 40 * i % 256 if label == "a" else 255 - 5 * i).save(
                root / "images48" / label / f"{i}.png"
            )
    text = "the quick brown fox\njumps over the lazy dog.\n" * 60
    (root / "notes.txt").write_text(text)
    (root / "notes.csv").write_text("text,label\n" + "good film,pos\nbad film,neg\n" * 20)
    (root / "pairs.tsv").write_text("a man rides\tein mann reitet\n" * 30)
    with _sandbox(root):
        runs = root / "runs"
        tiny_text = [
            "--hidden",
            "8",
            "--layers",
            "1",
            "--tbptt",
            "8",
            "--batch-size",
            "2",
            "--sample-every",
            "2",
        ]
        trainings = {
            "image": ["train", "image", "--data", "digits"],
            "text": ["train", "text", "--data", "notes.txt", *tiny_text],
        }
        for name, argv in trainings.items():
            more = ["--max-steps", "3", "--name", name, "--runs-dir", str(runs), "--no-progress"]
            code, _, err = _quiet_main([*argv, *more])
            assert code == 0, err
        pristine = {name: _digest(runs / name) for name in ("image", "text")}
        yield root, pristine


def _damaged_copy(root: Path, run: str, target: str, damage: str, where: Path) -> Path:
    """A copy of ``run`` with one file or folder damaged in one way."""
    copy = where / f"{run}-{target}-{damage}".replace(" ", "-")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root / "runs" / run, copy, symlinks=True)
    if damage == "none":
        return copy
    checkpoint = sorted((copy / "checkpoints").iterdir())[-1]
    path = {
        "META": checkpoint / "meta.json",
        "MODEL": checkpoint / "model.safetensors",
        "OPTIMIZER": checkpoint / "optimizer.safetensors",
    }.get(target, copy / target)
    original = path.read_bytes() if path.is_file() else b""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if damage == "delete":
        return copy
    if damage == "folder":
        path.mkdir()
    elif damage == "loop":
        path.symlink_to(path.name)
    else:
        path.write_bytes(
            {
                "empty": b"",
                "truncate": original[: len(original) // 2],
                "list": b"[1, 2]",
                "string": b'"text"',
                "object": b'{"kind": "image-classification"}',
                "null": b"null",
                "not json": b"not json {",
                "binary": bytes(range(256)),
            }[damage]
        )
    return copy


# ---------------------------------------------------------------------------------------------
# the strategies


def _often(usual: list[str], every: list[str]) -> st.SearchStrategy[str]:
    """Mostly a usual value, so that commands get past their parsing, else any of ``every``."""
    return st.one_of(st.sampled_from(usual), st.sampled_from(usual), st.sampled_from(every))


@st.composite
def _value(draw, kind: str, action: argparse.Action) -> str:
    if kind == "choice":
        choices = [str(c) for c in action.choices]
        return draw(_often(choices, STRINGS))
    pools = {
        "number": _often(["1", "2", "3", "0.5"], NUMBERS),
        "path": _often(["digit.png", "out.png", "a-file.txt"], PATHS),
        "run": _often(["RUN"], [*PATHS, "lenet5", "resnet20"]),
        "data": st.sampled_from(DATA),
        "device": st.sampled_from(DEVICES),
        "string": st.sampled_from(STRINGS + PATHS),
    }
    return draw(pools[kind])


@st.composite
def command_lines(draw) -> list[str]:
    """A command, its positionals in order and up to three options placed anywhere."""
    path, parser = draw(st.sampled_from(COMMANDS))
    positionals, options = [], []
    flags = [a for a in parser._actions if a.option_strings and a.nargs != argparse.SUPPRESS]
    flags = [a for a in flags if not isinstance(a, argparse._HelpAction)]
    for action in parser._actions:
        if not action.option_strings:
            times = {"?": (0, 1), "*": (0, 2), "+": (1, 2)}.get(action.nargs, (1, 1))
            for _ in range(draw(st.integers(*times))):
                positionals.append(draw(_value(_kind(action), action)))
    chosen = draw(st.lists(st.sampled_from(flags), max_size=3, unique_by=id)) if flags else []
    for action in chosen:
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            options.append([flag])
        else:
            options.append([flag, draw(_value(_kind(action), action))])
    argv = list(positionals)
    for option in options:  # anywhere: before, between or after the positionals
        at = draw(st.integers(0, len(argv)))
        while at and at < len(argv) and argv[at - 1].startswith("-"):
            at -= 1  # never between an option and its value
        argv[at:at] = option
    if path[0] == "train":
        argv += TRAIN_LIMITS + TASK_LIMITS.get(path[1], [])
    return [*path, *argv]


# ---------------------------------------------------------------------------------------------
# the property


@given(
    argv=command_lines(),
    run=st.sampled_from(["image", "text"]),
    target=st.sampled_from([None, *RUN_FILES]),
    damage=st.sampled_from(DAMAGES),
)
def test_any_command_line_is_exit_0_or_2_without_traceback(scratch, argv, run, target, damage):
    root, pristine = scratch
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if target is None:  # the real run, read in place (or a copy, when training may continue)
        resumes = "--resume" in argv
        run_dir = _damaged_copy(root, run, "none", "none", work) if resumes else None
        run_dir = run_dir or root / "runs" / run
    else:
        run_dir = _damaged_copy(root, run, target, damage, work)
    argv = [str(run_dir) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--runs-dir", str(work)]
    before = _digest(run_dir)
    with _sandbox(root):
        code, _, err = _quiet_main(argv)
    assert "Traceback" not in err, f"{argv}\n{err}"
    assert code in (0, 2), f"{argv} exited {code}\n{err}"
    assert len(err.strip().splitlines()) <= 3, f"{argv}\n{err}"
    after = _digest(run_dir)
    watched = {k: v for k, v in before.items() if k in pristine[run]}  # not earlier outputs
    changed = [k for k, digest in watched.items() if after.get(k) != digest]
    if not (code == 0 and "--resume" in argv):
        assert not changed, f"{argv} changed {changed} of the run it read\n{err}"
    if target is None and "--resume" not in argv:
        assert _digest(root / "runs" / run).items() >= pristine[run].items()
