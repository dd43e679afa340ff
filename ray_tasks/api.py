"""What a project's own tasks.py uses (re-exported by ``ray_tasks``): ray-tasks' tasks added
to its collection, the settings its tasks share with ours, the cluster's nodes as Fabric
groups, a command run in the cluster's environment."""

import os

from . import config, groups, inventory, ray_commands
from .collection import namespace
from .user_errors import user_error, user_errors


def add_to(collection, name=None):
    """Add ray-tasks' tasks to ``collection`` (at its top level, or as the sub-collection
    ``name``: ``inv NAME.start``) and the ``ray`` defaults under the values it already
    configures; returns ``collection``."""
    if name:
        collection.add_collection(namespace, name=name)
    else:
        for task_name, task in namespace.tasks.items():
            collection.add_task(task, name=task_name)
    configured = collection.configuration().get("ray", {})
    collection.configure({"ray": dict(config.DEFAULTS, **configured)})
    return collection


def settings(c):
    """The checked ``ray`` settings of ``c`` (a config.Settings), as ray-tasks' tasks see
    them: defaults < invoke.yaml < environment < flags given to earlier tasks."""
    with user_errors():
        return config.settings(c)


def _nodes(c, head_only=False):
    """The settings and the nodes selected by ``ray.hosts`` (the head alone if
    ``head_only``); a nodes file of localhost alone, which runs without SSH, is refused."""
    resolved = settings(c)
    with user_errors():
        nodes = inventory.load_nodes(resolved.nodes)
        selected = nodes[:1] if head_only else inventory.select(nodes, resolved.hosts)
    if nodes[0].is_local:
        user_error(f"{resolved.nodes} lists localhost, which ray-tasks runs without SSH: "
                   "Fabric groups need SSH (use c.run here, or list the machine by an "
                   "address SSH reaches)")
    if resolved.key_file and not os.path.isfile(resolved.key_file):
        user_error(f"key_file {resolved.key_file} does not exist")
    return resolved, selected


def _open(resolved, nodes):
    """The nodes' SshHosts, connected (known_hosts unreadable: a one-line error)."""
    with user_errors():
        return groups.open_hosts(resolved, nodes)


def nodes_group(c, serial=False):
    """The selected nodes (``ray.hosts``, default all) as a Fabric group, connected as
    ray-tasks connects: a ThreadingGroup working on at most ``ray.parallel`` nodes at
    once, or with ``serial`` a SerialGroup, in nodes-file order. Close it with
    ``group.close()`` or use it as ``with nodes_group(c) as group:``."""
    resolved, selected = _nodes(c)
    return groups.group(_open(resolved, selected), serial, resolved.parallel)


def head_connection(c):
    """The head (the first node of nodes.txt) as an open Fabric Connection."""
    resolved, head = _nodes(c, head_only=True)
    return _open(resolved, head)[0].connection


def in_cluster_env(c, command):
    """``command`` as shell text that runs it in the installation directory with the
    setup-env.sh ray-tasks wrote sourced (as ``inv exec`` does): the cluster's venv first
    on PATH, worker_code on PYTHONPATH, ``ray.init()`` joining the cluster."""
    return ray_commands.enter_cluster_env(settings(c).installation_directory) + command
