"""What the operator sees: host-prefixed lines (identical ones from many hosts printed once,
the hosts folded into ranges), the summary (one line when every host succeeded, else the
table of the failed hosts) or, with --json, one JSON document, and the failure verdict.

With --json, stdout holds only the JSON document: everything else goes to stderr.
"""

import contextlib
import dataclasses
import functools
import json
import os
import sys
import threading

import rich.console
import rich.progress
from invoke.exceptions import Exit

from . import shell
from .host_ranges import fold

_lock = threading.Lock()


@dataclasses.dataclass
class Mode:
    """How the task reports: ``json`` (the summary as JSON on stdout, the rest on stderr),
    ``verbose`` (the summary table lists every host), ``dry_run`` (nothing was changed)."""
    json: bool = False
    verbose: bool = False
    dry_run: bool = False
    drawing: bool = False  # a live line is on the terminal


mode = Mode()


def configure(settings):
    """Report as ``settings`` ask (their json, verbose and dry_run)."""
    mode.json, mode.verbose, mode.dry_run = settings.json, settings.verbose, settings.dry_run


def stdout():
    """Where the operator's lines go: stdout, or stderr when stdout is for JSON."""
    return sys.stderr if mode.json else sys.stdout


def say(text, stream=None):
    """Print one line (safe to call from several threads)."""
    with _lock:
        print(text, file=stream or stdout(), flush=True)


def host_line(host, text):
    say(f"[{host}] {text}")


def on_terminal():
    """Whether live progress lines may be drawn: stderr is a terminal, outside CI."""
    return not os.environ.get("CI") and rich.console.Console(stderr=True).is_terminal


@contextlib.contextmanager
def progress(what, total):
    """A live line on a terminal (``venvs built 37/64`` and the time so far) while a step
    runs on ``total`` hosts; yields the function to call as each host is done. In a pipe or
    CI, nothing is drawn (plain lines only)."""
    columns = (rich.progress.TextColumn(what or ""), rich.progress.MofNCompleteColumn(),
               rich.progress.BarColumn(), rich.progress.TimeElapsedColumn())
    with _live_line(what, total, columns) as advance:
        yield lambda: advance(1)


@contextlib.contextmanager
def transfer(what, total):
    """A live line on a terminal (``wheels pushed 37.5/108.0 MB 21.3 MB/s``) while ``total``
    bytes are sent; yields the function to call with each count of bytes done. In a pipe or
    CI, nothing is drawn."""
    columns = (rich.progress.TextColumn(what), rich.progress.DownloadColumn(),
               rich.progress.TransferSpeedColumn(), rich.progress.TimeElapsedColumn())
    with _live_line(what, total, columns) as advance:
        yield advance


@contextlib.contextmanager
def _live_line(what, total, columns):
    """Draw ``columns`` for ``total`` units of ``what`` on the terminal, if there is one and
    ``what`` is named; yields the function that advances it by a count."""
    if not what or not on_terminal():
        yield lambda count: None
        return
    with rich.progress.Progress(*columns, console=rich.console.Console(stderr=True),
                                transient=True) as bar, _drawing():
        counted = bar.add_task(what, total=total)
        yield functools.partial(bar.advance, counted)


@contextlib.contextmanager
def _drawing():
    """While a live line is drawn (it hides the cursor)."""
    mode.drawing = True
    try:
        yield
    finally:
        mode.drawing = False


def show_cursor():
    """Show the terminal's cursor again, if a live line hid it, before an abrupt exit."""
    if mode.drawing:
        rich.console.Console(stderr=True).show_cursor(True)


@contextlib.contextmanager
def waiting(what):
    """A spinner with ``what`` on a terminal while the controller waits (nothing else)."""
    if not on_terminal():
        yield
        return
    with rich.console.Console(stderr=True).status(what), _drawing():
        yield


def host_lines(messages):
    """``messages`` ({host: message}, in nodes-file order) with the hosts of each distinct
    message folded into one line: ``[10.0.0.[2-64]] joined 10.0.0.1:6379``."""
    for message, hosts in _grouped(messages).items():
        say(f"[{fold(hosts)}] {message}")


def _grouped(texts):
    """{text: [hosts]} from {host: text}, each text in the order it first appears."""
    groups = {}
    for host, text in texts.items():
        groups.setdefault(text, []).append(host)
    return groups


def grouped_output(outputs):
    """Each distinct output of ``outputs`` ({host: output}) once, every line prefixed with
    the hosts that printed it, folded (``[10.0.0.[1-32]] | 6.1.0``); hosts that printed
    nothing share one ``(no output)`` line."""
    with _lock:
        for output, hosts in _grouped({host: output.rstrip("\n") for host, output
                                       in outputs.items()}).items():
            prefix = f"[{fold(hosts)}]"
            lines = [f"{prefix} | {line}" for line in output.splitlines()]
            print("\n".join(lines or [f"{prefix} (no output)"]), file=stdout())
        stdout().flush()


def host_output(host, output, stream=None):
    """Show a command's whole output, every line prefixed with its host."""
    lines = output.rstrip("\n").splitlines() or ["(no output)"]
    with _lock:
        for line in lines:
            print(f"[{host}] | {line}", file=stream or sys.stderr)
        (stream or sys.stderr).flush()


def table(headers, rows):
    """Left-aligned columns, as text."""
    cells = [list(map(str, headers))] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _nodes(count):
    return f"{count} node" + ("" if count == 1 else "s")


def summary_line(task, outcomes, seconds):
    """``start: 200 nodes ok in 24.1 s``, or how many of them failed."""
    failed = sum(not outcome.ok for outcome in outcomes.values())
    if not failed:
        return f"{task}: {_nodes(len(outcomes))} ok in {seconds:.1f} s"
    return (f"{task}: {failed} of {_nodes(len(outcomes))} FAILED, {len(outcomes) - failed} "
            f"ok, in {seconds:.1f} s")


def summary(task, outcomes, seconds, log=None):
    """The end of a task: the table of the failed hosts (with --verbose, of every host),
    then the summary line, then where the tracebacks of internal errors were saved
    (``log``), if any."""
    shown = [(host, outcome) for host, outcome in outcomes.items()
             if mode.verbose or not outcome.ok]
    rows = [(str(host), "ok" if outcome.ok else "FAILED", f"{outcome.seconds:.1f}",
             outcome.message) for host, outcome in shown]
    if rows:
        say(f"\n{task}: summary\n" + table(("host", "result", "seconds", "detail"), rows))
    say(summary_line(task, outcomes, seconds))
    if log:
        say(f"internal errors: the full tracebacks are in {log} (please report them)")


def json_summary(task, outcomes, seconds, log=None, retry=None, details=None):
    """The task's summary as one JSON object on one line of stdout (the schema is in
    README.md): per host ok, message and seconds, plus the task's ``details``."""
    document = {
        "task": task,
        "ok": all(outcome.ok for outcome in outcomes.values()),
        "seconds": round(seconds, 2),
        "hosts": [{"host": str(host), "ok": outcome.ok, "message": outcome.message,
                   "seconds": round(outcome.seconds, 2)} for host, outcome in outcomes.items()],
        "failed": [str(host) for host, outcome in outcomes.items() if not outcome.ok],
        "retry": retry,
        "log": log,
        "dry_run": mode.dry_run,
        **(details or {}),
    }
    with _lock:
        print(json.dumps(document), file=sys.stdout, flush=True)


# The settings a task's retry repeats as flags, beyond the connection flags every task takes.
_TASK_FLAGS = {
    "install": ("version", "wheelhouse"),
    "update": ("version", "wheelhouse"),
    "start": ("worker_dir", "num_workers"),
    "restart-workers": ("worker_dir", "num_workers"),
}
_COMMON_FLAGS = ("nodes", "key_file", "username", "installation_directory")
# Settings that matter to a task without a flag of its own: given in the environment.
_TASK_ENV = {"selftest": ("version",)}


def retry_command(task, hosts, settings, defaults, arguments=()):
    """The command that reruns ``task`` on ``hosts`` with the settings that differ from
    ``defaults`` (update: on every node, at the same version), quoted for any shell."""
    def changed(key):  # None: unset, as by default
        value = getattr(settings, key)
        return key in defaults and value is not None and value != defaults[key]

    flags = [key for key in _COMMON_FLAGS + _TASK_FLAGS.get(task, ()) if changed(key)]
    if task == "update" and "version" not in flags:
        flags.append("version")
    words = [f"INVOKE_RAY_{key.upper()}={getattr(settings, key)}"
             for key in _TASK_ENV.get(task, ()) if changed(key)]
    words = (["env", *words] if words else []) + ["inv", task, *arguments]
    for key in flags:
        value = getattr(settings, key)
        option = "--" + key.replace("_", "-")
        words.append(option if value is True else f"{option}={value}")
    if task != "update":
        words.append("--hosts=" + ",".join(hosts))
    return shell.join(*words)


def verdict(task, outcomes, settings, defaults, arguments=()):
    """Raise invoke's Exit naming the failed hosts and how to retry just them (update,
    which acts on every node, is rerun whole)."""
    failed = [str(host) for host, outcome in outcomes.items() if not outcome.ok]
    if not failed:
        return
    command = retry_command(task, failed, settings, defaults, arguments)
    how = "rerun it" if task == "update" else "retry just them"
    raise Exit(
        f"{task} failed on {len(failed)} of {len(outcomes)} nodes: {', '.join(failed)}\n"
        f"{how}: {command}",
        code=1,
    )


class HostLines:
    """A text stream that prints each complete line written to it as ``[host] | line``
    (for output that arrives in pieces, as a followed log does)."""

    def __init__(self, host, stream=None):
        self.host = host
        self.stream = stream
        self.partial = ""

    def write(self, text):
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            say(f"[{self.host}] | {line}", self.stream)

    def flush(self):
        pass
