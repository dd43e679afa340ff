"""What every task shares: the common flags, their help, and opening the cluster's runner."""

import contextlib
import functools
import getpass

from invoke.exceptions import Exit

from .. import auth_token, config, inventory
from ..hostkeys import KnownHostsError
from ..runner import Runner
from ..worker_code import WorkerCodeError

COMMON_HELP = {
    "nodes": "Nodes file, one [user@]host[:port] per line, the head first (ray.nodes).",
    "hosts": "Act on these nodes only: comma-separated, as written in the nodes file.",
    "key-file": "SSH private key for every node (ray.key_file; default: your SSH keys).",
    "username": "SSH user where the nodes file names none (ray.username).",
    "installation-directory": "Where Ray lives on the nodes (ray.installation_directory, "
                              "default ~/ray).",
}


def common(nodes, hosts, key_file, username, installation_directory):
    """The common flags as a mapping for ``config.settings``."""
    return {"nodes": nodes, "hosts": hosts, "key_file": key_file, "username": username,
            "installation_directory": installation_directory}


def user_error(message):
    """Stop the task with a one-line error (exit status 2)."""
    raise Exit(f"error: {message}", code=2)


def ask_sudo_password():
    """Read the nodes' sudo password at the terminal, without echoing it."""
    try:
        return getpass.getpass("sudo password for the nodes: ")
    except (EOFError, KeyboardInterrupt):
        user_error("no sudo password was given (--prompt-for-sudo-password reads it from "
                   "the terminal)")


@contextlib.contextmanager
def user_errors():
    """Turn an operator's mistake (config, nodes file, flags) into a one-line error."""
    try:
        yield
    except (config.ConfigError, inventory.InventoryError, WorkerCodeError,
            auth_token.TokenError, KnownHostsError) as error:
        user_error(error)


class Cluster:
    """The settings, the nodes file and a runner over the selected nodes (plus the head)."""

    def __init__(self, c, with_head=False, head_only=False, probe=True, **flags):
        with user_errors():
            self.settings = config.settings(c, **flags)
            self.nodes = inventory.load_nodes(self.settings.nodes)
            self.selected = inventory.select(self.nodes, self.settings.hosts)
        self.local = self.nodes[0].is_local
        reached = [self.nodes[0]] if head_only else list(self.selected)
        if with_head and self.nodes[0] not in reached:
            reached.insert(0, self.nodes[0])
        with user_errors():
            self.runner = Runner(self.settings, reached, probe=probe, head=self.nodes[0])

    @functools.cached_property
    def token(self):
        """The cluster's Ray token, from the controller's auth_token_file (made if missing)."""
        with user_errors():
            return auth_token.load_or_create(self.settings.auth_token_file)

    @property
    def head(self):
        return self.runner.host(self.nodes[0])

    def selected_hosts(self):
        """The ready hosts among those selected with --hosts."""
        return [host for host in self.runner.ready if host.node in self.selected]

    def head_selected(self):
        return self.nodes[0] in self.selected

    def stop_here(self, task):
        """End the task now if any host failed (preflight: nothing was touched)."""
        if len(self.runner.ready) < len(self.runner.hosts):
            self.runner.finish(task)
