"""Ray jobs from the controller: submit, jobs, job-logs, job-stop (Ray's job API on the
head; the controller needs no Ray)."""

from invoke import task
from invoke.exceptions import Exit

from .. import job_watch, jobs, report
from ..cluster import Cluster
from ..hosts import StepError
from ..user_errors import user_error
from .options import COMMON_HELP, common

SUBMIT_HELP = {
    **COMMON_HELP,
    "script": "The Python script the job runs (on the head, with the cluster's Python).",
    "args": "The script's arguments, as one string split like a shell would: "
            "--args='--epochs 3 --name \"a b\"'.",
    "working-dir": "Upload this directory as the job's working directory (the script must "
                   "lie inside it); its modules import in the job and its tasks.",
    "no-wait": "Submit and return at once, printing how to follow the job.",
}
JOB_HELP = {**COMMON_HELP, "job-id": "The job's id, as submit and `inv jobs` show it."}


def check_running(cluster, task_name, *arguments):
    """End the task unless the head was reached and its cluster runs (the retry hint
    repeats the task's positional ``arguments``)."""
    if len(cluster.runner.ready) < len(cluster.runner.hosts):
        cluster.runner.finish(task_name, *arguments)
    if not cluster.head.state.gcs:
        cluster.runner.fail(cluster.head, "the cluster is not running: use inv start")
        cluster.runner.finish(task_name, *arguments)


def on_head(cluster, step, task_name, *arguments):
    """``step(head)`` for a task of the head alone; a StepError fails the task."""
    try:
        return step(cluster.head)
    except StepError as error:
        cluster.runner.fail(cluster.head, error.message, error.output)
        cluster.runner.finish(task_name, *arguments)


def end_with_job(cluster, task_name, job_id, *arguments):
    """End the task with the finished job's status: the summary when it succeeded, else exit
    with its exit code (or 1) naming its status (with --json, after the document)."""
    code, line = on_head(cluster, lambda head: jobs.outcome(job_id, jobs.status(head, job_id)),
                         task_name, *arguments)
    if code:
        cluster.runner.fail(cluster.head, line)
        if report.mode.json:
            cluster.runner.summarize(task_name, *arguments, details={"job": job_id})
        raise Exit(code=code)
    report.say(line)
    cluster.runner.note(cluster.head, line)
    cluster.runner.finish(task_name, *arguments, details={"job": job_id})


@task(auto_shortflags=False, help=SUBMIT_HELP)
def submit(c, script, args="", working_dir=None, no_wait=False, nodes=None, hosts=None,
           key_file=None, username=None, installation_directory=None, json=False,
           verbose=False):
    """Run SCRIPT on the cluster as a Ray job, its output streamed here.

    The script (or --working-dir) is uploaded; `inv submit train.py --args='--epochs 3'`
    runs `python train.py --epochs 3` as a job. Exits with the job's status: 0, or the
    job's exit code (1 when it has none) naming its status. Ctrl-C asks whether to stop
    the job or leave it running (without a terminal: leaves it running)."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    try:
        files = jobs.pack_job(script, working_dir, args)
    except jobs.JobError as error:
        user_error(error)
    job_id = jobs.new_job_id()
    with cluster.runner:
        check_running(cluster, "submit", script)
        message = on_head(cluster, lambda head: jobs.submit(head, files, job_id), "submit",
                          script)
        report.host_line(cluster.head.node, message)
        if no_wait:
            report.say(job_watch.how_to_follow(job_id))
            cluster.runner.note(cluster.head, message)
            if report.mode.json:
                cluster.runner.summarize("submit", script, details={"job": job_id})
            return
        if not on_head(cluster, lambda head: job_watch.follow(head, job_id), "job-logs",
                       job_id, "--follow"):
            raise Exit(code=job_watch.INTERRUPTED)
        end_with_job(cluster, "submit", job_id, script)


@task(auto_shortflags=False, help=COMMON_HELP)
def jobs_(c, nodes=None, hosts=None, key_file=None, username=None,
          installation_directory=None, json=False, verbose=False):
    """List the cluster's Ray jobs: id, status, start, seconds, entrypoint."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    headers = ("job", "status", "started", "seconds", "entrypoint")
    with cluster.runner:
        check_running(cluster, "jobs")
        found = on_head(cluster, jobs.list_jobs, "jobs")
        rows = jobs.job_rows(found, cluster.head.home)
        report.say(report.table(headers, rows) if rows else "no jobs")
        cluster.runner.finish("jobs", details={"jobs": [dict(zip(headers, row))
                                                        for row in rows]})


@task(auto_shortflags=False,
      help={**JOB_HELP, "follow": "Keep printing the output as it comes, until the job ends "
                                  "(Ctrl-C stops following; the job keeps running)."})
def job_logs(c, job_id, follow=False, nodes=None, hosts=None, key_file=None, username=None,
             installation_directory=None, json=False, verbose=False):
    """Print one job's output (so far, or --follow it until the job ends)."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner:
        check_running(cluster, "job-logs", job_id)
        if not follow:
            report.stdout().write(on_head(cluster, lambda head: jobs.logs(head, job_id),
                                          "job-logs", job_id))
            cluster.runner.finish("job-logs", job_id, details={"job": job_id})
        if not on_head(cluster, lambda head: job_watch.follow(head, job_id, ask_to_stop=False),
                       "job-logs", job_id, "--follow"):
            raise Exit(code=job_watch.INTERRUPTED)
        end_with_job(cluster, "job-logs", job_id, job_id)


@task(auto_shortflags=False, help=JOB_HELP)
def job_stop(c, job_id, nodes=None, hosts=None, key_file=None, username=None,
             installation_directory=None, json=False, verbose=False):
    """Ask Ray to stop a job (it is sent SIGTERM, then killed)."""
    cluster = Cluster(c, head_only=True,
                      **common(nodes, hosts, key_file, username, installation_directory,
                               json, verbose))
    with cluster.runner:
        check_running(cluster, "job-stop", job_id)
        stopped = on_head(cluster, lambda head: jobs.stop(head, job_id), "job-stop", job_id)
        message = f"job {job_id}: " + ("stopping" if stopped else "was not running")
        report.say(message)
        cluster.runner.note(cluster.head, message)
        cluster.runner.finish("job-stop", job_id, details={"job": job_id})
