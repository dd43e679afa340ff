"""What the operator sees: host-prefixed lines, a summary table, and the failure verdict."""

import sys
import threading

from invoke.exceptions import Exit

from . import shell

_lock = threading.Lock()


def say(text, stream=None):
    """Print one line (safe to call from several threads)."""
    with _lock:
        print(text, file=stream or sys.stdout, flush=True)


def host_line(host, text):
    say(f"[{host}] {text}")


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


def summary(task, outcomes, log=None):
    """The per-host table printed at the end of a task, then where the tracebacks of internal
    errors were saved (``log``), if any."""
    rows = [(str(host), "ok" if outcome.ok else "FAILED", f"{outcome.seconds:.1f}", outcome.message)
            for host, outcome in outcomes.items()]
    say(f"\n{task}: summary\n" + table(("host", "result", "seconds", "detail"), rows))
    if log:
        say(f"internal errors: the full tracebacks are in {log} (please report them)")


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
