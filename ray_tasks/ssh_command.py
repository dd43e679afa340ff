"""The ``ssh`` command line that reaches a node as ray-tasks' own connection does (no I/O):
the same user, port, key, known_hosts and host key policy, and the same ssh_config (so its
aliases, ProxyJump and ProxyCommand apply)."""

import os

# host_key_policy as OpenSSH's StrictHostKeyChecking.
STRICT_HOST_KEY_CHECKING = {"accept-new": "accept-new", "strict": "yes", "off": "no"}
DEFAULT_SSH_CONFIG = "~/.ssh/config"


def config_args(ssh_config):
    """``-F`` for a configured ssh_config other than ssh's own default; a missing one is
    none at all (as for ray-tasks)."""
    if os.path.expanduser(ssh_config) == os.path.expanduser(DEFAULT_SSH_CONFIG):
        return []
    path = os.path.expanduser(ssh_config)
    return ["-F", path if os.path.isfile(path) else os.devnull]


def ssh_args(node, settings, remote_command, terminal=True):
    """The argument list of ``ssh`` running ``remote_command`` on ``node`` (on a
    terminal of its own when ``terminal``)."""
    args = ["ssh", *(["-t"] if terminal else []), *config_args(settings.ssh_config)]
    user = node.user or settings.username
    if user:
        args += ["-l", user]
    if node.port:
        args += ["-p", str(node.port)]
    if settings.key_file:
        args += ["-i", settings.key_file, "-o", "IdentitiesOnly=yes"]
    args += ["-o", f'UserKnownHostsFile="{os.path.expanduser(settings.known_hosts)}"',
             "-o", f"StrictHostKeyChecking={STRICT_HOST_KEY_CHECKING[settings.host_key_policy]}",
             "-o", f"ConnectTimeout={settings.connect_timeout}",
             "--", node.host, remote_command]
    return args
