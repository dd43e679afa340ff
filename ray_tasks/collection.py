"""The task collection that tasks.py exposes to ``inv``, with the ``ray`` config defaults."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import commands, inspection, install, lifecycle

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
)
namespace.add_task(commands.exec_, name="exec")
namespace.configure({"ray": DEFAULTS})
