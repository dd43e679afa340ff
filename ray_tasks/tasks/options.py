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
    "json": "Print the summary as one JSON document on stdout (schema in README; ray.json); "
            "every other line goes to stderr. The exit status is the same.",
    "verbose": "The summary table lists every node, not only the failed ones (ray.verbose).",
}


DRY_RUN_HELP = {"dry-run": "Connect and probe, then say per node what would run (the ray "
                           "start line, the venv, the code sync) and change nothing "
                           "(ray.dry_run)."}


def common(nodes, hosts, key_file, username, installation_directory, json, verbose):
    """The common flags as a mapping for ``config.settings`` (an unset boolean flag leaves
    the configured value)."""
    return {"nodes": nodes, "hosts": hosts, "key_file": key_file, "username": username,
            "installation_directory": installation_directory, "json": json or None,
            "verbose": verbose or None}


def ask_sudo_password():
    """Read the nodes' sudo password at the terminal, without echoing it."""
    try:
        return getpass.getpass("sudo password for the nodes: ")
    except (EOFError, KeyboardInterrupt):
        user_error("no sudo password was given (--prompt-for-sudo-password reads it from "
                   "the terminal)")
