"""Ray jobs on the head, through Ray's job API there (the controller needs no Ray): the
job's files packed here, submitted, followed, listed, stopped.

The job API runs on the head with its venv and setup-env.sh (node_scripts/job_client.py),
so the cluster's token is read from its file on the head: it never travels, and is never
on a command line or in the output.
"""

import dataclasses
import datetime
import io
import os
import posixpath
import secrets
import string
import tarfile
import threading

from . import ray_commands, shell, worker_code
from .hosts import StepError, json_answer

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobError(Exception):
    """The script or working directory cannot be submitted."""


@dataclasses.dataclass(frozen=True)
class JobFiles:
    """What a job uploads: the archive of its working directory, and the script's path and
    arguments inside it."""
    archive: bytes
    script: str
    args: tuple


def pack_job(script, working_dir, args):
    """The job's files: ``working_dir`` (then ``script`` must lie inside it), else the
    script alone. ``args`` is split like a shell would."""
    path = os.path.abspath(os.path.expanduser(script))
    if not os.path.isfile(path):
        raise JobError(f"script {script} is not a file")
    try:
        words = tuple(shell.split_args(args))
    except ValueError as error:
        raise JobError(f"--args: {error} in {args!r}") from None
    if working_dir is None:
        return JobFiles(_pack_file(path), os.path.basename(path), words)
    root = os.path.abspath(os.path.expanduser(working_dir))
    if not os.path.isdir(root):
        raise JobError(f"--working-dir {working_dir} is not a directory")
    relative = os.path.relpath(path, root)
    if relative.startswith(os.pardir + os.sep):
        raise JobError(f"script {script} is not inside --working-dir {working_dir}: put it "
                       "there, or give its path inside it")
    return JobFiles(worker_code.pack(root).archive, relative, words)


def _pack_file(path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=os.path.basename(path))
    return buffer.getvalue()


def new_job_id():
    """A submission id in Ray's own form (``raysubmit_`` and 16 letters or digits), made
    here so it is known before any output."""
    alphabet = string.ascii_letters + string.digits
    return "raysubmit_" + "".join(secrets.choice(alphabet) for _ in range(16))


def failure(what, result):
    """The StepError of a failed job_client.py run: its one-line error, or all it printed."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if lines:
        return StepError(f"could not {what}: {lines[-1][len('error: '):]}")
    return StepError.from_result(f"could not {what} (exit {result.exited})", result)


def ask(head, action, *args, what):
    """Run job_client.py's ``action`` on the head; StepError with its one-line error."""
    command = ray_commands.head_python(head.home, "job_client.py", action, *args)
    result = head.run(command, what, check=False)
    if result.exited != 0:
        raise failure(what, result)
    return result


def submit(head, files, job_id):
    """Upload the job's files to the head and submit the job there."""
    archive = ray_commands.state_path(head.home, "jobs", job_id + ".tar.gz")
    head.put(files.archive, archive, mode=0o600)
    command = ray_commands.submit_job(head.home, archive, job_id, files.script, files.args)
    result = head.run(command, "submit the job", check=False)
    if result.exited != 0:
        raise failure("submit the job", result)
    return f"job {job_id} submitted ({len(files.archive)} bytes uploaded)"


def status(head, job_id):
    """{"status", "message", "exit_code"} of the job."""
    result = ask(head, "status", job_id, what=f"read the status of job {job_id}")
    return json_answer(result, "the job status is not JSON")


def stop(head, job_id):
    """Ask Ray to stop the job; whether it was running."""
    result = ask(head, "stop", job_id, what=f"stop job {job_id}")
    return json_answer(result, "the job API's answer is not JSON")["stopped"]


def logs(head, job_id):
    """The job's output so far."""
    return ask(head, "logs", job_id, what=f"read the output of job {job_id}").stdout


def list_jobs(head):
    """Every job Ray knows of (listed by job_client.py)."""
    return json_answer(ask(head, "list", what="list the jobs"), "the job list is not JSON")


def start_following(head, job_id, out):
    """Follow the job's output onto ``out`` in a thread (it ends when the job does); returns
    the thread, whose ``error`` is set if following failed."""
    command = ray_commands.head_python(head.home, "job_client.py", "follow", job_id)

    def follow():
        try:
            result = head.stream(command, f"follow job {job_id}", out)
            if result.exited != 0:
                thread.error = f"could not follow job {job_id} (exit {result.exited})"
        except StepError as error:
            thread.error = error.message

    thread = threading.Thread(target=follow, name=f"follow-{job_id}", daemon=True)
    thread.error = None
    thread.start()
    return thread


def outcome(job_id, state):
    """(exit status, one line) for a finished job's ``state`` (status()'s answer): 0 for a
    job that succeeded, else the job's own exit code, or 1."""
    line = f"job {job_id} {state['status']}"
    if state["status"] == "SUCCEEDED":
        return 0, line
    if state["message"]:
        line += f": {state['message']}"
    return state.get("exit_code") or 1, line


def shown_entrypoint(entrypoint, home):
    """A job's entrypoint as the operator wrote it: the head's venv Python as ``python``."""
    python = shell.quote(posixpath.join(ray_commands.venv_link(home), "bin", "python"))
    if entrypoint.startswith(python + " "):
        return "python" + entrypoint[len(python):]
    return entrypoint


def job_rows(jobs, home):
    """The rows of ``inv jobs``: id, status, start (local time), seconds, entrypoint; the
    newest job last."""
    rows = []
    for job in sorted(jobs, key=lambda job: job.get("start_time") or 0):
        start, end = job.get("start_time"), job.get("end_time")
        started = (datetime.datetime.fromtimestamp(start / 1000).strftime("%Y-%m-%d %H:%M:%S")
                   if start else "-")
        seconds = f"{(end - start) / 1000:.1f}" if start and end else "-"
        rows.append((job["id"], job["status"], started, seconds,
                     shown_entrypoint(job["entrypoint"], home)))
    return rows
