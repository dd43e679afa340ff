"""Commands the controller runs on this machine (pip): tracked, so that Ctrl-C ends them too."""

import subprocess

_running = set()


def run(command):
    """Run ``command`` (a list) here, its output captured as text; returns the
    CompletedProcess."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _running.add(process)
    try:
        stdout, stderr = process.communicate()
    finally:
        _running.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def kill_all():
    """Kill every command still running (safe in a signal handler: takes no lock)."""
    for process in list(_running):
        try:
            process.kill()
        except OSError:
            pass
