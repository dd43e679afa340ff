"""Head side: Ray's job API, asked through its Python SDK (the head's venv, setup-env.sh
sourced, so the cluster's token is read from its file; none is ever passed in).

    python job_client.py submit ID WORKING_DIR SCRIPT [ARG...]   (WORKING_DIR is removed)
    python job_client.py follow ID        the job's output as it comes, until the job ends
    python job_client.py logs ID          the job's output so far
    python job_client.py status ID        JSON: status, message, exit code
    python job_client.py stop ID          JSON: whether it was running
    python job_client.py list             JSON: every job

A failure prints ``error: ...`` on stderr and exits 2.
"""

import asyncio
import json
import logging
import os
import select
import shlex
import shutil
import sys
import threading

DASHBOARD = "http://127.0.0.1:8265"
EXIT_ERROR = 2


def client():
    """The job API's client (Ray's own progress notes silenced: only the job speaks)."""
    from ray.job_submission import JobSubmissionClient
    logging.getLogger("ray").setLevel(logging.WARNING)
    return JobSubmissionClient(DASHBOARD)


def submit(job_id, working_dir, script, *args):
    """Submit ``script`` with the head's Python, ``working_dir`` uploaded as the job's own;
    the local copy is removed once Ray holds it."""
    try:
        client().submit_job(entrypoint=shlex.join([sys.executable, script, *args]),
                            submission_id=job_id, runtime_env={"working_dir": working_dir})
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)
    print(json.dumps({"id": job_id}))


def end_when_reader_leaves():
    """Exit once nobody reads our output any more (the controller's connection closed), so
    a follower never outlives it waiting for the job's next line."""
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLERR | select.POLLHUP)
    while not poll.poll(1000):
        pass
    os._exit(0)


async def tail(job_id):
    async for chunk in client().tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def follow(job_id):
    threading.Thread(target=end_when_reader_leaves, daemon=True).start()
    asyncio.run(tail(job_id))


def logs(job_id):
    sys.stdout.write(client().get_job_logs(job_id))


def status(job_id):
    info = client().get_job_info(job_id)
    print(json.dumps({"status": str(info.status.value), "message": info.message or "",
                      "exit_code": info.driver_exit_code}))


def stop(job_id):
    print(json.dumps({"stopped": client().stop_job(job_id)}))


def list_jobs():
    jobs = [{"id": job.submission_id or job.job_id, "status": str(job.status.value),
             "entrypoint": job.entrypoint, "start_time": job.start_time,
             "end_time": job.end_time, "message": job.message or ""}
            for job in client().list_jobs()]
    print(json.dumps(jobs))


ACTIONS = {"submit": submit, "follow": follow, "logs": logs, "status": status, "stop": stop,
           "list": list_jobs}


def main(argv):
    try:
        ACTIONS[argv[0]](*argv[1:])
    except Exception as error:  # the SDK's errors: one line for the controller
        message = str(error).strip().splitlines() or [type(error).__name__]
        print(f"error: {message[-1] if 'Traceback' in message[0] else message[0]}",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
