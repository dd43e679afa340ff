"""Following a job's output at the terminal, and what Ctrl-C does meanwhile: on a terminal
it asks whether to stop the job or leave it running; without one it leaves it running.
Either way it says how to follow the job again."""

import signal
import sys
import threading

from . import jobs, report
from .hosts import StepError

INTERRUPTED = 130


class HeldOutput:
    """A text stream onto the operator's output (stdout, or stderr under --json) that holds
    what is written while a question is asked."""

    def __init__(self, stream=None):
        self.stream = stream or report.stdout()
        self.lock = threading.Lock()
        self.held = None

    def write(self, text):
        with self.lock:
            if self.held is None:
                self.stream.write(text)
            else:
                self.held.append(text)

    def flush(self):
        with self.lock:
            self.stream.flush()

    def hold(self):
        with self.lock:
            self.held = []

    def release(self):
        with self.lock:
            self.stream.write("".join(self.held or []))
            self.held = None
            self.stream.flush()


def how_to_follow(job_id):
    return (f"follow it with: inv job-logs {job_id} --follow; stop it with: "
            f"inv job-stop {job_id}")


def wait(thread):
    """Wait for ``thread``; True when it ended, False on Ctrl-C."""
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        return False
    return True


def choose_to_stop(job_id, out):
    """After Ctrl-C: ask at the terminal whether to stop the job (the default leaves it
    running); without a terminal, leave it."""
    if not sys.stdin.isatty():
        return False
    out.hold()
    try:
        answer = input(f"\nCtrl-C: stop job {job_id}, or leave it running? [s]top / "
                       "[l]eave (default): ")
    except (EOFError, KeyboardInterrupt):
        answer = ""
    finally:
        out.release()
    return answer.strip().lower() in ("s", "stop")


def follow(head, job_id, ask_to_stop=True):
    """Stream the job's output until it ends; returns True when it ended, False when the
    operator left it running (Ctrl-C). ``ask_to_stop`` offers to stop it on Ctrl-C."""
    out = HeldOutput()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = jobs.start_following(head, job_id, out)
    while not wait(thread):
        if not (ask_to_stop and choose_to_stop(job_id, out)):
            report.say(f"\njob {job_id} left running on the cluster"
                       + ("" if sys.stdin.isatty() or not ask_to_stop else
                          " (no terminal to ask whether to stop it)")
                       + f"; {how_to_follow(job_id)}")
            return False
        report.say(f"\nstopping job {job_id}...")
        jobs.stop(head, job_id)
    if thread.error:
        raise StepError(thread.error)
    return True
