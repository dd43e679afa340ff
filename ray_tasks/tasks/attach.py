"""The attach task: an interactive shell on a node, the cluster's environment set."""

import os
import sys

from invoke import task

from .. import config, inventory, ray_commands, report, ssh_command
from ..user_errors import user_error, user_errors
from .options import COMMON_HELP, common

ATTACH_HELP = {
    **{key: text for key, text in COMMON_HELP.items() if key not in ("hosts", "json", "verbose")},
    "host": "The node to attach to, as written in the nodes file (default: the head).",
}


def chosen_node(nodes, host):
    """The node named by --host (one), else the head."""
    if not host:
        return nodes[0]
    chosen = inventory.select(nodes, host)
    if len(chosen) != 1:
        user_error(f"--host: {host!r} names {len(chosen)} nodes: give one")
    return chosen[0]


@task(auto_shortflags=False, help=ATTACH_HELP)
def attach(c, host=None, nodes=None, key_file=None, username=None,
           installation_directory=None):
    """Open an interactive shell on the head (or --host=NODE), setup-env.sh sourced.

    `python` and `ray status` work at once there. It runs ssh with the connection's user,
    port, key, known_hosts and ssh_config (jump hosts included); exit or Ctrl-D leaves.
    Needs a terminal: for one command without one, use inv exec."""
    with user_errors():
        settings = config.settings(c, **common(nodes, None, key_file, username,
                                               installation_directory, False, False))
        node = chosen_node(inventory.load_nodes(settings.nodes), host)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        user_error("attach needs a terminal (an interactive shell's stdin and stdout); "
                   f"for one command use: inv exec 'CMD' --hosts={node}")
    command = ray_commands.interactive_shell(settings.installation_directory)
    report.say(f"attach: a shell on {node} with setup-env.sh sourced (exit or Ctrl-D "
               "leaves)")
    if node.is_local:
        os.execvp("sh", ["sh", "-c", command])
    try:
        os.execvp("ssh", ssh_command.ssh_args(node, settings, command))
    except FileNotFoundError:
        user_error("ssh not found on this machine: install the OpenSSH client")
