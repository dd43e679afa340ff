"""The task collection that tasks.py exposes to ``inv``, with the ``ray`` config defaults."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import attach, commands, inspection, install, jobs, lifecycle, logs

namespace = Collection(
    install.install,
    install.selftest,
    install.update,
    lifecycle.start,
    lifecycle.stop,
    lifecycle.restart_workers,
    inspection.test,
    inspection.status,
    inspection.dashboard,
    inspection.check_network,
    jobs.submit,
    jobs.job_logs,
    jobs.job_stop,
    logs.logs,
    attach.attach,
)
namespace.add_task(jobs.jobs_, name="jobs")
namespace.add_task(commands.exec_, name="exec")
namespace.configure({"ray": DEFAULTS})
