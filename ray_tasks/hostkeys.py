"""SSH host keys: known_hosts is read, new keys recorded (accept-new), changed keys refused.

Fabric 3 would accept any key and read no known_hosts; every connection of ray-tasks goes
through ``trust()`` below before its first command, and so does each of its ProxyJump hosts
(Fabric makes those connections itself, trusting any key); a ProxyCommand checks its own
hop's key (with ssh's own known_hosts). A key on an ``@revoked`` line is refused for every
host; ``@cert-authority`` lines are skipped (paramiko cannot verify host certificates), as
is any line paramiko cannot read, the way OpenSSH skips them.
"""

import os
import threading

import paramiko
from paramiko.hostkeys import HostKeyEntry

from . import shell
from .report import say


def known_hosts_name(host, port):
    """The name a host's key goes under in known_hosts, as OpenSSH writes it: ``host``, or
    ``[host]:port`` for a port other than 22."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def removal_command(name, path):
    """The command that removes the recorded key of ``name`` from the known_hosts file
    ``path`` (ssh-keygen's own default file needs no -f)."""
    words = ["ssh-keygen", "-R", name]
    if os.path.expanduser(path) != os.path.expanduser("~/.ssh/known_hosts"):
        words += ["-f", path]
    return shell.join(*words)


class HostKeyRefused(Exception):
    """The host's key is unknown under the strict policy."""


class HostKeyRevoked(HostKeyRefused):
    """The host presented a key that known_hosts marks ``@revoked``."""

    def __init__(self, hostname, key):
        super().__init__(hostname)
        self.key_type = key.get_name()


class KnownHostsError(Exception):
    """The known_hosts file cannot be read."""


def _revoked(revoked, key):
    return (key.get_name(), key.get_base64()) in revoked


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """Accept a host seen for the first time and remember its key for known_hosts."""

    def __init__(self, recorded, revoked):
        self.recorded = recorded
        self.revoked = revoked

    def missing_host_key(self, client, hostname, key):
        if _revoked(self.revoked, key):
            raise HostKeyRevoked(hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.recorded.append((hostname, key))


class Strict(paramiko.MissingHostKeyPolicy):
    """Refuse a host whose key is not in known_hosts."""

    def __init__(self, revoked):
        self.revoked = revoked

    def missing_host_key(self, client, hostname, key):
        if _revoked(self.revoked, key):
            raise HostKeyRevoked(hostname, key)
        raise HostKeyRefused(hostname)


class AcceptAny(paramiko.MissingHostKeyPolicy):
    """Accept every key without recording it (host_key_policy: off)."""

    def missing_host_key(self, client, hostname, key):
        pass


class KnownHosts:
    """One known_hosts file shared by the connections of one task (read once)."""

    def __init__(self, path, policy):
        self.path = os.path.expanduser(path)
        self.policy = policy
        self.recorded = []
        self.revoked = set()
        self._lock = threading.Lock()
        self.known = paramiko.HostKeys()
        if policy == "off":
            say("WARNING: host_key_policy is off: SSH host keys are not checked; "
                "a machine impersonating a node would be trusted.")
        elif os.path.exists(self.path):
            self._load()

    def _load(self):
        """Read known_hosts line by line: keys, ``@revoked`` keys; skip what paramiko cannot
        use (``@cert-authority``, unknown key types, malformed lines)."""
        try:
            with open(self.path, "rb") as handle:
                lines = handle.read().decode("utf-8", errors="replace").splitlines()
        except OSError as error:
            raise KnownHostsError(f"known_hosts: cannot read {self.path} "
                                  f"({error.strerror or error})") from None
        authorities = 0
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0] == "@cert-authority":
                authorities += 1
            elif fields[0] == "@revoked":
                entry = _entry(fields[1:], number)
                if entry:
                    self.revoked.add((entry.key.get_name(), entry.key.get_base64()))
            elif not fields[0].startswith("@"):
                entry = _entry(fields, number)
                for name in entry.hostnames if entry else ():
                    self.known.add(name, entry.key.get_name(), entry.key)
        if authorities:
            say(f"note: {self.path} has {authorities} @cert-authority line(s): skipped, "
                "paramiko does not verify host certificates (hosts are checked by their "
                "own keys)")

    def trust(self, client, host, port):
        """Give ``client`` the known keys of ``host`` (not a revoked one) and the policy for
        a key it lacks."""
        name = known_hosts_name(host, port)
        for key_type, key in (self.known.lookup(name) or {}).items():
            if not _revoked(self.revoked, key):
                client.get_host_keys().add(name, key_type, key)
        if self.policy == "accept-new":
            client.set_missing_host_key_policy(AcceptNew(self.recorded, self.revoked))
        elif self.policy == "strict":
            client.set_missing_host_key_policy(Strict(self.revoked))
        else:
            client.set_missing_host_key_policy(AcceptAny())

    def save_new(self):
        """Append the keys accepted on first contact to known_hosts."""
        with self._lock:
            if not self.recorded:
                return
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                for hostname, key in self.recorded:
                    handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            for hostname, _ in self.recorded:
                say(f"[{hostname}] new host key recorded in {self.path}")
            self.recorded.clear()


def _entry(fields, number):
    """The HostKeyEntry of one known_hosts line's fields (hosts, key type, key), or None
    for a line paramiko cannot read (skipped, as OpenSSH skips it)."""
    try:
        return HostKeyEntry.from_line(" ".join(fields[:3]), number)
    except Exception:  # any malformed or unknown key: the line is skipped
        return None
