"""What the operator sees: host-prefixed lines, a summary table, and the failure verdict."""

import sys
import threading

from invoke.exceptions import Exit

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
    rows = [(host, "ok" if outcome.ok else "FAILED", f"{outcome.seconds:.1f}", outcome.message)
            for host, outcome in outcomes.items()]
    say(f"\n{task}: summary\n" + table(("host", "result", "seconds", "detail"), rows))
    if log:
        say(f"internal errors: the full tracebacks are in {log} (please report them)")


def verdict(task, outcomes):
    """Raise invoke's Exit naming the failed hosts and how to retry just them."""
    failed = [host for host, outcome in outcomes.items() if not outcome.ok]
    if not failed:
        return
    names = ",".join(failed)
    raise Exit(
        f"{task} failed on {len(failed)} of {len(outcomes)} nodes: {', '.join(failed)}\n"
        f"retry just them: inv {task} --hosts={names}",
        code=1,
    )
