"""One connection per node for the whole task, a bounded pool of threads, a result per host.

Every task goes through a Runner: it connects to the selected nodes in parallel (at most
``parallel`` at a time), probes each once, then runs the task's steps with ``each()``. A host
that fails a step is reported at once (one line, then its output) and left out of the
following steps; the other hosts carry on. ``finish()`` prints the summary and exits
non-zero naming the failed hosts.
"""

import concurrent.futures
import contextlib
import dataclasses
import io
import json
import os
import posixpath
import secrets
import signal
import socket
import sys
import threading
import time

import fabric
import invoke
import paramiko

from . import local_commands, ray_commands, report, shell, tracebacks
from .hostkeys import HostKeyRefused, HostKeyRevoked, KnownHosts


class StepError(Exception):
    """A step failed on one host; ``output`` is what the failing command printed."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.message = message
        self.output = output


@dataclasses.dataclass
class Outcome:
    ok: bool = True
    message: str = ""
    seconds: float = 0.0


# Pinned over ~/.invoke.yaml and ~/.fabric.yaml: with a pty, what a command reads on stdin
# (a sudo password) is echoed into its captured output; echo prints every command; a dry
# run or watchers answering prompts would make every result a lie.
_QUIET = {"run": {"hide": True, "warn": True, "in_stream": False, "pty": False,
                  "fallback": False, "echo": False, "echo_stdin": False, "dry": False,
                  "asynchronous": False, "disown": False, "watchers": []}}


def private(mode):
    """True for a secret's mode: no permission for group or others."""
    return not mode & 0o077


INTERRUPTED = ("\ninterrupted: the steps under way were cut off; nodes keep what they had "
               "(a new venv or worker code is switched to only once complete): rerun to "
               "finish\n")


class Host:
    """A node with its open connection and what the probe found (``facts``)."""

    def __init__(self, node, settings):
        self.node = node
        self.settings = settings
        self.facts = {}
        self.ip = node.host

    @property
    def home(self):
        """The absolute installation directory on this node."""
        return self.facts["home"]

    def run(self, command, what, timeout=None, check=True, stdin=None):
        """Run a shell command, feeding it ``stdin`` (text) if given; on failure raise
        StepError saying it could not do ``what``."""
        timeout = timeout or self.settings.command_timeout
        in_stream = io.StringIO(stdin) if stdin is not None else False
        try:
            result = self._run(command, timeout, in_stream)
        except invoke.exceptions.CommandTimedOut as error:
            raise StepError(f"could not {what}: no answer within {timeout}s",
                            error.result.stdout + error.result.stderr) from None
        if result.exited == -1 and not self.connected:
            raise StepError(f"lost the connection while trying to {what}: the host stopped "
                            f"answering", result.stdout + result.stderr)
        if check and result.exited != 0:
            output = result.stdout + result.stderr
            raise StepError(f"could not {what} (exit {result.exited})", output)
        return result

    def state(self, action, *args, what, check=True):
        """Run the node_state script with the node's plain Python (in the configured
        installation directory when the node was not probed)."""
        home = self.facts.get("home", self.settings.installation_directory)
        command = ray_commands.node_state(self.settings.python, home, action, *args)
        return self.run(command, what, check=check)

    def probe(self):
        """Learn the node's installation and Ray state in one round trip."""
        command = ray_commands.probe(self.settings.python, self.settings.installation_directory,
                                     self.settings.port)
        result = self.run(command, "probe the node", check=False)
        if result.exited == 127 or ("not found" in result.stderr and not result.stdout):
            raise StepError(f"{self.settings.python} not found: install Python 3 on the node "
                            "or set ray.python to its interpreter", result.stderr)
        if result.exited != 0:
            raise StepError(f"could not probe the node (exit {result.exited})",
                            result.stdout + result.stderr)
        try:
            self.facts = json.loads((result.stdout.strip().splitlines() or [""])[-1])
        except ValueError:
            raise StepError("the probe's answer is not JSON (does a login script print "
                            "on stdout?)", result.stdout + result.stderr) from None


class LocalHost(Host):
    """This machine, without SSH (a nodes file whose only node is localhost)."""

    def __init__(self, node, settings):
        super().__init__(node, settings)
        self.ip = "127.0.0.1"
        self._context = invoke.Context(invoke.Config(overrides=_QUIET))

    connected = True

    def open(self):
        pass

    def _run(self, command, timeout, in_stream):
        return self._context.run(command, timeout=timeout, in_stream=in_stream)

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
    """A node reached over SSH with one Fabric connection."""

    def __init__(self, node, settings, known_hosts):
        super().__init__(node, settings)
        connect_kwargs = {
            "banner_timeout": settings.connect_timeout,
            "auth_timeout": settings.connect_timeout,
        }
        if settings.key_file:
            connect_kwargs.update(key_filename=settings.key_file, look_for_keys=False)
        self.connection = fabric.Connection(
            node.host,
            user=node.user or settings.username or None,
            port=node.port,
            connect_timeout=settings.connect_timeout,
            connect_kwargs=connect_kwargs,
            config=fabric.Config(overrides=_QUIET),
        )
        known_hosts.trust(self.connection.client, self.connection.host, self.connection.port)

    def open(self):
        self.connection.open()
        transport = self.connection.transport
        self.ip = transport.getpeername()[0]
        watch_liveness(transport, self.settings.connect_timeout)

    @property
    def connected(self):
        return self.connection.is_connected

    def _run(self, command, timeout, in_stream):
        return self.connection.run("sh -c " + shell.quote(command), timeout=timeout,
                                   in_stream=in_stream)

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
        self.connection.close()


def watch_liveness(transport, connect_timeout):
    """Drop the connection of a host that stops answering (network down, machine gone)
    after about 3 x connect_timeout, instead of waiting out a whole command timeout: SSH
    keepalives keep data in flight, and TCP gives up when it stays unacknowledged."""
    transport.set_keepalive(max(1, connect_timeout // 3))
    sock = transport.sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3000 * connect_timeout)


def connect_error(error, host):
    """One line saying why connecting to ``host`` failed, and what to do about it."""
    node, settings = host.node, host.settings
    where = f"{node.host}:{node.port or 22}"
    if isinstance(error, paramiko.BadHostKeyException):
        return (f"HOST KEY CHANGED for {where} (expected {error.expected_key.get_name()}, got "
                f"{error.key.get_name()}): possible impersonation. If the host was "
                f"reinstalled, remove its old key: ssh-keygen -R {error.hostname}")
    if isinstance(error, HostKeyRevoked):
        return (f"the host key of {where} ({error.key_type}) is marked @revoked in "
                f"{settings.known_hosts}: refused; give the host a new key, or remove the "
                "@revoked line if the revocation is wrong")
    if isinstance(error, HostKeyRefused):
        return (f"unknown host key for {where} and host_key_policy is strict: add it to "
                f"{settings.known_hosts} (ssh-keyscan) or use host_key_policy: accept-new")
    if isinstance(error, paramiko.PasswordRequiredException):
        return f"key file {settings.key_file} is encrypted: load it into ssh-agent instead"
    if isinstance(error, paramiko.AuthenticationException):
        user = host.connection.user
        key = settings.key_file or "your default SSH keys"
        return f"login refused for {user}@{where} with {key}: check username and key_file"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer from {where} within {settings.connect_timeout}s (connect_timeout)"
    if isinstance(error, paramiko.SSHException) and "private key file" in str(error):
        return f"key file {settings.key_file} is not a private key SSH can use ({error})"
    if isinstance(error, paramiko.SSHException):
        return f"SSH failed with {where}: {error}"
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return f"cannot connect to {where}: {reason}"
    return f"{type(error).__name__}: {error}"


CONNECT_ERRORS = (paramiko.SSHException, HostKeyRefused, OSError, EOFError)


class Runner:
    """The hosts of one task, connected and (unless ``probe`` is off) probed, with the
    outcome of each."""

    def __init__(self, settings, nodes, probe=True):
        self.settings = settings
        self.probe = probe
        known_hosts = None
        if not all(node.is_local for node in nodes):
            known_hosts = KnownHosts(settings.known_hosts, settings.host_key_policy)
        self.known_hosts = known_hosts
        self.hosts = [LocalHost(node, settings) if node.is_local
                      else SshHost(node, settings, known_hosts) for node in nodes]
        self.outcomes = {str(host.node): Outcome() for host in self.hosts}
        self.logged = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.interrupt)

    def __enter__(self):
        if self.settings.key_file and not os.path.isfile(self.settings.key_file):
            for host in self.hosts:
                self.fail(host, f"key_file {self.settings.key_file} does not exist")
        self.each(self._connect)
        if self.known_hosts:
            self.known_hosts.save_new()
        return self

    def __exit__(self, *exc_info):
        for host in self.hosts:
            host.close()

    def _connect(self, host):
        try:
            host.open()
        except CONNECT_ERRORS as error:  # anything else is a defect: _step logs it
            raise StepError(connect_error(error, host)) from None
        if self.probe:
            host.probe()

    @property
    def ready(self):
        """The hosts that have not failed so far."""
        return [host for host in self.hosts if self.outcomes[str(host.node)].ok]

    def host(self, node):
        return next(host for host in self.hosts if host.node == node)

    def fail(self, host, message, output=""):
        """Record that ``host`` failed, and say so."""
        outcome = self.outcomes[str(host.node)]
        outcome.ok = False
        outcome.message = message
        report.host_line(host.node, f"FAILED: {message}")
        if output.strip():
            report.host_output(host.node, output)

    def each(self, step, hosts=None):
        """Run ``step(host)`` on each of ``hosts`` (default: all ready) in the bounded pool.

        A step returns a message for the host (or None) or raises StepError. Returns the
        hosts on which the step succeeded, in nodes-file order.
        """
        hosts = [host for host in (self.ready if hosts is None else hosts)
                 if self.outcomes[str(host.node)].ok]
        if not hosts:
            return []
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(self.settings.parallel,
                                                                     len(hosts)))
        try:
            list(pool.map(lambda host: self._step(step, host), hosts))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [host for host in hosts if self.outcomes[str(host.node)].ok]

    def interrupt(self, *_signal):
        """Ctrl-C (the SIGINT handler from the moment a runner exists): end the whole process
        at once, wherever it is: the connections drop, which cuts off the steps under way,
        the controller's own commands (pip) are killed, and nothing more runs, no step and
        no clean-up (a closed connection would open again for its next command). Exit 130."""
        local_commands.kill_all()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.write(2, INTERRUPTED.encode())
        os._exit(130)

    def _step(self, step, host):
        outcome = self.outcomes[str(host.node)]
        started = time.monotonic()
        try:
            message = step(host)
        except (StepError, OSError, EOFError, paramiko.SSHException) as error:
            if isinstance(error, StepError):
                self.fail(host, error.message, error.output)
            else:
                self.fail(host, f"lost the connection: {connect_error(error, host)}")
        except invoke.exceptions.Exit:
            raise
        except Exception as error:  # a defect: the host fails, the traceback goes to a log
            self.logged = True
            self.fail(host, tracebacks.record(host.node, error))
        else:
            if message:
                outcome.message = message
                report.host_line(host.node, message)
        outcome.seconds += time.monotonic() - started

    def finish(self, task):
        """Print the summary; exit non-zero naming the failed hosts, if any."""
        report.summary(task, self.outcomes, tracebacks.log_path() if self.logged else None)
        report.verdict(task, self.outcomes)
