"""The task collection that tasks.py exposes to ``inv``, with the ``ray`` config defaults."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import checks, commands, install, lifecycle

namespace = Collection(
    install.install,
    install.selftest,
    install.update,
    lifecycle.start,
    lifecycle.stop,
    lifecycle.restart_workers,
    checks.test,
    checks.status,
    checks.dashboard,
)
namespace.add_task(commands.exec_, name="exec")
namespace.configure({"ray": DEFAULTS})
