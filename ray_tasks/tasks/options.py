"""What every task shares: the common flags and their help, and the sudo password prompt."""

import getpass

from ..user_errors import user_error

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


def ask_sudo_password():
    """Read the nodes' sudo password at the terminal, without echoing it."""
    try:
        return getpass.getpass("sudo password for the nodes: ")
    except (EOFError, KeyboardInterrupt):
        user_error("no sudo password was given (--prompt-for-sudo-password reads it from "
                   "the terminal)")
