"""Unexpected errors (defects, not the operator's mistakes): the full traceback goes to a
private log file on the controller, the host gets a one-line reason naming it."""

import os
import threading
import time
import traceback

LOG_DIRECTORY = "~/.cache/ray-tasks/logs"

_lock = threading.Lock()
_path = None


def log_path():
    """This run's log file (one per process), or None while nothing was logged."""
    return _path


def record(where, error):
    """Append ``error``'s traceback, headed by ``where`` (a host), to this run's log file
    (made 0600 in a 0700 directory); returns the one-line reason for the host."""
    global _path
    reason = f"internal error: {type(error).__name__}: {error}".splitlines()[0]
    text = "".join(traceback.format_exception(error))
    with _lock:
        try:
            path = _path or _new_path()
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with open(descriptor, "a", encoding="utf-8", errors="replace") as handle:
                handle.write(f"[{where}] {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")
        except OSError as failure:
            return f"{reason} (the traceback could not be saved: {failure})"
        _path = path
    return reason


def _new_path():
    directory = os.path.expanduser(LOG_DIRECTORY)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return os.path.join(directory, f"{stamp}-{os.getpid()}.log")
