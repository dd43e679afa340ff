"""What every task shares: the common flags and their help, and the sudo password prompt."""

import getpass

from ..config import DEFAULTS
from ..user_errors import user_error

# What an empty (or off) default means, for the settings that have one.
UNSET = {
    "hosts": "every node",
    "username": "SSH's (ssh_config, else your login name)",
    "key_file": "your SSH keys",
    "num_workers": "Ray counts each node's logical CPUs",
    "object_store_memory": "Ray's",
    "start_args": "none",
    "wheelhouse": "off",
    "json": "off",
    "verbose": "off",
    "dry_run": "off",
}


def setting_help(key, text):
    """A flag's help: ``text``, then the setting ``key`` it writes and its default (from
    config.DEFAULTS)."""
    default = DEFAULTS[key]
    shown = UNSET[key] if default in ("", False) else default
    return f"{text} [ray.{key}, default: {shown}]"


COMMON_HELP = {
    "nodes": setting_help("nodes", "Nodes file, one [user@]host[:port] per line, the head "
                                   "first."),
    "hosts": setting_help("hosts", "Act on these nodes only: comma-separated, as written in "
                                   "the nodes file."),
    "key-file": setting_help("key_file", "SSH private key for every node."),
    "username": setting_help("username", "SSH user where the nodes file names none."),
    "installation-directory": setting_help("installation_directory",
                                           "Where Ray lives on the nodes."),
    "json": setting_help("json", "Print the summary as one JSON document on stdout (schema "
                                 "in README); every other line goes to stderr. The exit "
                                 "status is the same."),
    "verbose": setting_help("verbose", "The summary table lists every node, not only the "
                                       "failed ones."),
}


DRY_RUN_HELP = {"dry-run": setting_help("dry_run", "Connect and probe, then say per node "
                                                  "what would run (the ray start line, the "
                                                  "venv, the code sync) and change nothing.")}


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
