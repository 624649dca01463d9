"""Progress on a terminal for `classify` and `build_model`; nothing when piped or with --json."""
import re
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from classifier import efficientnet
from classifier.pipeline import Result
from classifier.progress import Progress

ERASE = "\r\033[K"


class Terminal(StringIO):
    def isatty(self):
        return True


def screen(text):
    """What a terminal shows once `text` is written: ERASE wipes the current line."""
    lines, current = [], ""
    for part in re.split(r"(\r\033\[K|\n)", text):
        if part == ERASE:
            current = ""
        elif part == "\n":
            lines.append(current)
            current = ""
        else:
            current += part
    return lines + ([current] if current else [])


@pytest.fixture
def classify_files(monkeypatch):
    """The pipeline's results, without the model: the display is what is under test."""

    def fake(paths, top_k=None):
        for path in paths:
            yield Result(path, code="unsupported", error="not an image") if "bad" in path else Result(path)

    monkeypatch.setattr("classifier.management.commands.classify.classify_files", fake)


def classify(*args, stdout, stderr):
    try:
        call_command("classify", *args, stdout=stdout, stderr=stderr)
    except CommandError:
        pass


def test_classify_shows_progress_on_a_terminal(classify_files):
    stdout, stderr = StringIO(), Terminal()

    classify("a.jpg", "bad.jpg", "c.jpg", stdout=stdout, stderr=stderr)

    assert "files: 3/3, 1 failed" in stderr.getvalue()
    assert stderr.getvalue().endswith(ERASE)  # the line is gone at the end
    assert stdout.getvalue().splitlines() == ["a.jpg: ", "bad.jpg: ERROR not an image", "c.jpg: "]


def test_results_on_the_same_terminal_never_land_on_the_progress_line(classify_files):
    terminal = Terminal()

    classify(*[f"photo{n}.jpg" for n in range(5)], stdout=terminal, stderr=terminal)

    assert "files: 5/5" in terminal.getvalue()
    assert screen(terminal.getvalue()) == [f"photo{n}.jpg: " for n in range(5)]


@pytest.mark.parametrize("args, stderr", [((), StringIO()), (("--json",), Terminal())], ids=["piped", "json"])
def test_classify_is_quiet_when_piped_or_with_json(classify_files, args, stderr):
    classify("a.jpg", "b.jpg", *args, stdout=StringIO(), stderr=stderr)
    assert stderr.getvalue() == ""


def test_the_line_counts_rate_and_time_left():
    clock = iter([0.0, 5.0, 5.0, 5.0])
    progress = Progress(Terminal(), 200, clock=lambda: next(clock))
    progress.done, progress.failed = 50, 2

    assert progress.line() == "files: 50/200, 2 failed, 10.0/s, 15 s left"


@pytest.mark.parametrize("terminal", [True, False])
def test_build_model_ticks_on_a_terminal_only(monkeypatch, terminal):
    monkeypatch.setattr(efficientnet, "build_artifacts", lambda model_dir, force: time.sleep(1.2) or [])
    stderr = Terminal() if terminal else StringIO()

    call_command("build_model", stdout=StringIO(), stderr=stderr)

    if terminal:
        assert "Building the model artifacts: 1 s" in stderr.getvalue() and stderr.getvalue().endswith(ERASE)
    else:
        assert stderr.getvalue() == ""
