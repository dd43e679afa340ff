"""ray-tasks: stand up and operate a Ray cluster on machines you already have, over SSH.

For a project's own tasks.py (see README, "Your own tasks"): the task collection and its
tasks, hooks that chain them, the settings, and the nodes as Fabric groups."""

__version__ = "0.1.0"

from . import hooks
from .api import add_to, head_connection, in_cluster_env, nodes_group, settings
from .collection import namespace
from .tasks.commands import exec_
from .tasks.inspection import dashboard, status, test
from .tasks.install import install, selftest, update
from .tasks.lifecycle import restart_workers, start, stop

__all__ = ["__version__", "add_to", "dashboard", "exec_", "head_connection", "hooks",
           "in_cluster_env", "install", "namespace", "nodes_group", "restart_workers",
           "selftest", "settings", "start", "status", "stop", "test", "update"]
