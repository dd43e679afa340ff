"""The transports: a node reached over SSH or this machine, each with one open connection for
the whole task, what its probe found, and the errors a step raises."""

import contextlib
import io
import json
import os
import posixpath
import secrets
import shutil

import invoke

from . import ray_commands, shell, ssh_sessions
from .facts import NodeFacts, NodeState
from .ssh_connections import (QUIET, fabric_config, jump_hosts, prepare_jump_host, ssh_connection,
                              watch_liveness)


class StepError(Exception):
    """A step failed on one host; ``output`` is what the failing command printed."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.message = message
        self.output = output

    @classmethod
    def from_result(cls, message, result):
        """The StepError of a failed command: ``message``, with all it printed."""
        return cls(message, result.stdout + result.stderr)


def json_answer(result, message):
    """The JSON object a node script printed on its last line of ``result``'s output;
    StepError(``message``) with the output when that line is not JSON."""
    try:
        return json.loads((result.stdout.strip().splitlines() or [""])[-1])
    except ValueError:
        raise StepError.from_result(message, result) from None


def private(mode):
    """True for a secret's mode: no permission for group or others."""
    return not mode & 0o077


class Host:
    """A node with its open connection, what the probe found (``facts``, a NodeFacts) and
    what the task's steps did there since (``state``, a NodeState); both None until the
    probe."""

    def __init__(self, node, settings):
        self.node = node
        self.settings = settings
        self.facts = None
        self.state = None
        self.ip = None  # the address Ray uses for the node: see node_address

    ssh_name = ""  # the host name SSH reaches the node by ("" without SSH)

    @property
    def home(self):
        """The absolute installation directory on this node."""
        return self.facts.home

    def run(self, command, what, timeout=None, check=True, stdin=None):
        """Run a shell command, feeding it ``stdin`` (text) if given; on failure raise
        StepError saying it could not do ``what``."""
        timeout = timeout or self.settings.command_timeout
        try:
            result = self._run(command, timeout, stdin)
        except invoke.exceptions.CommandTimedOut as error:
            raise StepError.from_result(f"could not {what}: no answer within {timeout}s",
                                        error.result) from None
        if result.exited == -1 and not self.connected:
            raise StepError.from_result(f"lost the connection while trying to {what}: the "
                                        "host stopped answering", result)
        if check and result.exited != 0:
            raise StepError.from_result(f"could not {what} (exit {result.exited})", result)
        return result

    def run_node_script(self, action, *args, what, check=True):
        """Run the node_state script with the node's plain Python (in the configured
        installation directory when the node was not probed)."""
        home = self.facts.home if self.facts else self.settings.installation_directory
        command = ray_commands.node_state(self.settings.python, home, action, *args)
        return self.run(command, what, check=check)

    def stream(self, command, what, out):
        """Run a shell command with no time limit (a liveness check still drops a host that
        stops answering), writing its stdout and stderr to ``out`` as they come; on a lost
        connection raise StepError saying it could not do ``what``. Returns the Result."""
        result = self._run(command, None, None, out=out)
        if result.exited == -1 and not self.connected:
            raise StepError(f"lost the connection while trying to {what}: the host stopped "
                            "answering")
        return result

    def probe(self, head=""):
        """Learn the node's installation and Ray state in one round trip (and its route
        towards ``head``, the head's SSH host name, when given)."""
        command = ray_commands.probe(self.settings.python, self.settings.installation_directory,
                                     self.settings.port, head)
        result = self.run(command, "probe the node", check=False)
        if result.exited == 127 or ("not found" in result.stderr and not result.stdout):
            raise StepError(f"{self.settings.python} not found: install Python 3 on the node "
                            "or set ray.python to its interpreter", result.stderr)
        if result.exited != 0:
            raise StepError.from_result(f"could not probe the node (exit {result.exited})",
                                        result)
        answer = json_answer(result, "the probe's answer is not JSON (does a login script "
                                     "print on stdout?)")
        self.facts = NodeFacts.from_probe(answer)
        self.state = NodeState.from_facts(self.facts)


class LocalHost(Host):
    """This machine, without SSH (a nodes file whose only node is localhost)."""

    def __init__(self, node, settings):
        super().__init__(node, settings)
        self.ip = "127.0.0.1"
        self._context = invoke.Context(invoke.Config(overrides=QUIET))

    connected = True

    def open(self):
        pass

    def _run(self, command, timeout, stdin, out=None):
        in_stream = io.StringIO(stdin) if stdin is not None else False
        output = {"hide": False, "out_stream": out, "err_stream": out} if out else {}
        return self._context.run(command, timeout=timeout, in_stream=in_stream, **output)

    def fetch(self, path, local_path):
        """Copy the file ``path`` to ``local_path``."""
        try:
            shutil.copyfile(path, local_path)
        except OSError as error:
            raise StepError(f"could not fetch {path}: {error.strerror or error}") from None

    def put(self, data, path, mode=0o644):
        """Write ``path`` through a new file (never an old one's inode and mode), renamed into
        place; a directory made for a secret is 0700."""
        temporary = path + ".new"
        try:
            os.makedirs(os.path.dirname(path), mode=0o700 if private(mode) else 0o777,
                        exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o777)
            with open(descriptor, "wb") as handle:
                os.fchmod(descriptor, mode)
                handle.write(data)
            os.replace(temporary, path)
        except OSError as error:
            raise StepError(f"could not write {path}: {error.strerror or error}") from None

    def close(self):
        pass


class SshHost(Host):
    """A node reached over SSH with one Fabric connection (through its jump hosts, if its
    ssh_config entry names any), configured by ``config`` (a fabric_config shared by the
    task's hosts; default: ray-tasks' own, QUIET)."""

    def __init__(self, node, settings, known_hosts, config=None):
        super().__init__(node, settings)
        self.connection = ssh_connection(node, settings, config or fabric_config(settings))
        self.jump_hosts = jump_hosts(self.connection)
        for hop in self.jump_hosts:
            prepare_jump_host(hop, settings)
        for each in (self.connection, *self.jump_hosts):
            known_hosts.trust(each.client, each.host, each.port)
        self.watchdog = None

    def open(self):
        self.connection.open()
        self.watchdog = watch_liveness(self.connection.transport, self.settings.connect_timeout)

    @property
    def ssh_name(self):
        return self.connection.host

    def port_of(self, hostname):
        """The SSH port of ``hostname``: this node's or one of its jump hosts'."""
        return next((each.port for each in (self.connection, *self.jump_hosts)
                     if each.host == hostname), 22)

    @property
    def connected(self):
        return self.connection.is_connected

    def _run(self, command, timeout, stdin, out=None):
        return ssh_sessions.run(self.connection, "sh -c " + shell.quote(command), timeout,
                                stdin, out)

    def fetch(self, path, local_path):
        """Copy the file ``path`` to ``local_path`` over SFTP."""
        try:
            self.connection.sftp().get(path, local_path)
        except OSError as error:
            raise StepError(f"could not fetch {path}: {error.strerror or error}") from None

    def put(self, data, path, mode=0o644):
        """Write ``path`` over SFTP through a temporary name; a secret (``private(mode)``) is
        never reachable by others with a wider mode, and a directory made for it is 0700."""
        sftp = self.connection.sftp()
        write = self._write_private if private(mode) else self._write
        try:
            try:
                write(sftp, data, path, mode)
            except FileNotFoundError:
                mode_flag = ["-m", "700"] if private(mode) else []
                self.run(shell.join("mkdir", "-p", *mode_flag, posixpath.dirname(path)),
                         "create a directory")
                write(sftp, data, path, mode)
        except OSError as error:
            raise StepError(f"could not write {path}: {error.strerror or error}") from None

    @staticmethod
    def _write(sftp, data, path, mode):
        """Write ``path`` through a temporary name, then rename it into place."""
        with sftp.open(path + ".new", "wb") as handle:
            handle.chmod(mode)
            handle.set_pipelined(True)
            handle.write(data)
        sftp.posix_rename(path + ".new", path)

    @staticmethod
    def _write_private(sftp, data, path, mode):
        """Write a secret: SFTP's open carries no mode, so the file is made inside a fresh
        0700 directory beside ``path`` (no one else can reach it there), given its mode before
        any byte, then renamed into place."""
        staging = f"{path}.{secrets.token_hex(4)}.new"
        sftp.mkdir(staging, 0o700)
        inside = posixpath.join(staging, posixpath.basename(path))
        renamed = False
        try:
            with sftp.open(inside, "wx") as handle:
                handle.chmod(mode)
                handle.write(data)
            sftp.posix_rename(inside, path)
            renamed = True
        finally:
            with contextlib.suppress(OSError):
                if not renamed:
                    sftp.remove(inside)
                sftp.rmdir(staging)

    def close(self):
        if self.watchdog:
            self.watchdog.stop()
        self.connection.close()
        for hop in self.jump_hosts:
            hop.close()


def make_host(node, settings, known_hosts, config):
    """The Host for ``node``: this machine for localhost, else an SSH connection checked
    against ``known_hosts``, with ``config`` (the task's fabric_config)."""
    if node.is_local:
        return LocalHost(node, settings)
    return SshHost(node, settings, known_hosts, config)
