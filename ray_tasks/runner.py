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

from . import (config, local_commands, node_address, ray_commands, report, shell,
               tracebacks)
from .hostkeys import (HostKeyRefused, HostKeyRevoked, KnownHosts, known_hosts_name,
                       removal_command)


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
        self.ip = None  # the address Ray uses for the node: see node_address

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
    """A node reached over SSH with one Fabric connection (through its jump hosts, if its
    ssh_config entry names any)."""

    def __init__(self, node, settings, known_hosts):
        super().__init__(node, settings)
        self.connection = ssh_connection(node, settings)
        self.jump_hosts = jump_hosts(self.connection)
        for hop in self.jump_hosts:
            prepare_jump_host(hop, settings)
        for each in (self.connection, *self.jump_hosts):
            known_hosts.trust(each.client, each.host, each.port)
        self.watchdog = None

    def open(self):
        self.connection.open()
        self.watchdog = watch_liveness(self.connection.transport, self.settings.connect_timeout)

    def port_of(self, hostname):
        """The SSH port of ``hostname``: this node's or one of its jump hosts'."""
        return next((each.port for each in (self.connection, *self.jump_hosts)
                     if each.host == hostname), 22)

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
        if self.watchdog:
            self.watchdog.stop()
        self.connection.close()
        for hop in self.jump_hosts:
            hop.close()


def ssh_connection(node, settings):
    """The Fabric connection to ``node``. The ssh_config file applies as with ssh (host
    aliases, HostName, User, Port, IdentityFile, ProxyJump, ProxyCommand), then
    /etc/ssh/ssh_config; nodes.txt's user and port and the settings win over it."""
    connect_kwargs = {
        "banner_timeout": settings.connect_timeout,
        "auth_timeout": settings.connect_timeout,
    }
    if settings.key_file:
        connect_kwargs.update(key_filename=settings.key_file, look_for_keys=False)
    connection = fabric.Connection(
        node.host,
        user=node.user or settings.username or None,
        port=node.port,
        connect_timeout=settings.connect_timeout,
        connect_kwargs=connect_kwargs,
        config=fabric.Config(overrides=_QUIET, user_ssh_path=settings.ssh_config),
        gateway=False,
    )
    connection.gateway = carrier(connection, {node.host})
    return connection


def carrier(connection, seen):
    """What carries ``connection``, as ssh decides it (Fabric's own chains ``ProxyJump a,b``
    backwards and loops on ``ProxyJump none``): the last of its ProxyJump hosts, each reached
    through the one before and the first as its own entry says; else its ProxyCommand;
    else None. A hop already on the way (``Host *`` rules) is reached directly."""
    names = [name.strip() for name in connection.ssh_config.get("proxyjump", "none").split(",")]
    if names != ["none"]:
        if seen & {fabric.connection.derive_shorthand(name)["host"] for name in names}:
            return None
        hop = None
        for name in names:
            previous = hop
            hop = fabric.Connection(name, config=connection.config.clone(),
                                    gateway=previous or False)
            if previous is None:
                hop.gateway = carrier(hop, seen | {hop.original_host})
        return hop
    command = connection.ssh_config.get("proxycommand", "none")
    return None if command == "none" else command


def jump_hosts(connection):
    """The ProxyJump connections of ``connection``, nearest to the node first."""
    hops = []
    hop = connection.gateway
    while isinstance(hop, fabric.Connection):
        hops.append(hop)
        hop = hop.gateway
    return hops


def prepare_jump_host(hop, settings):
    """Give a jump host the node's timeouts, and key_file before the keys ssh would try
    (its own User and IdentityFile come from ssh_config, as with ssh)."""
    hop.connect_timeout = settings.connect_timeout
    keys = hop.connect_kwargs.get("key_filename", [])
    keys = [keys] if isinstance(keys, str) else list(keys)
    hop.connect_kwargs = dict(hop.connect_kwargs, banner_timeout=settings.connect_timeout,
                              auth_timeout=settings.connect_timeout)
    if settings.key_file:
        hop.connect_kwargs["key_filename"] = [settings.key_file, *keys]


class Watchdog(threading.Thread):
    """Closes an SSH transport whose server stops answering: every ``interval`` seconds it
    sends a keepalive request that wants a reply (as OpenSSH's ServerAliveInterval does)
    and closes the transport when none comes within ``deadline`` seconds. It works over
    whatever carries the connection (a TCP socket, a channel through a jump host, a
    ProxyCommand's pipe) and on controllers without TCP_USER_TIMEOUT."""

    def __init__(self, transport, interval, deadline):
        super().__init__(name="ssh-watchdog", daemon=True)
        self.transport = transport
        self.interval = interval
        self.deadline = deadline
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval) and self.transport.is_active():
            alarm = threading.Timer(self.deadline, self.transport.close)
            alarm.daemon = True
            alarm.start()
            try:
                self.transport.global_request("keepalive@openssh.com", wait=True)
            except (OSError, EOFError, paramiko.SSHException):
                self.transport.close()
            finally:
                alarm.cancel()

    def stop(self):
        self.stopped.set()


def watch_liveness(transport, connect_timeout):
    """Drop the connection of a host that stops answering (network down, machine gone, jump
    host gone) after about 3 x connect_timeout, instead of waiting out a whole command
    timeout. Returns the started Watchdog; on a direct TCP connection the kernel also
    gives up on unacknowledged data after that long, where it can (TCP_USER_TIMEOUT)."""
    sock = transport.sock
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                            3000 * connect_timeout)
    watchdog = Watchdog(transport, connect_timeout, 2 * connect_timeout)
    watchdog.start()
    return watchdog


def _where(host):
    """``host:port`` as SSH reaches the node, after its nodes.txt name if that differs."""
    connection = getattr(host, "connection", None)
    if connection is None:
        return str(host.node)
    where = f"{connection.host}:{connection.port}"
    if connection.original_host != connection.host:
        where = f"{connection.original_host} ({where})"
    return where


def _which(host, key_name, where):
    """``where`` when ``key_name`` (a known_hosts name) is the node's, else the jump host."""
    connection = host.connection
    if key_name == known_hosts_name(connection.host, connection.port):
        return where
    return f"{key_name}, the jump host of {where}"


def connect_error(error, host):
    """One line saying why connecting to ``host`` failed, and what to do about it."""
    settings, where = host.settings, _where(host)
    if isinstance(error, paramiko.BadHostKeyException):
        name = known_hosts_name(error.hostname, host.port_of(error.hostname))
        return (f"HOST KEY CHANGED for {_which(host, name, where)} (expected "
                f"{error.expected_key.get_name()}, got {error.key.get_name()}): possible "
                "impersonation. If the host was reinstalled, remove its old key: "
                f"{removal_command(name, settings.known_hosts)}")
    if isinstance(error, HostKeyRevoked):
        return (f"the host key of {where} ({error.key_type}) is marked @revoked in "
                f"{settings.known_hosts}: refused; give the host a new key, or remove the "
                "@revoked line if the revocation is wrong")
    if isinstance(error, HostKeyRefused):
        return (f"unknown host key for {_which(host, str(error), where)} and host_key_policy "
                f"is strict: add it to {settings.known_hosts} (ssh-keyscan) or use "
                "host_key_policy: accept-new")
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

    def __init__(self, settings, nodes, probe=True, head=None):
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
        self.head = next((host for host in self.hosts if host.node == head), None)

    def __enter__(self):
        if self.settings.key_file and not os.path.isfile(self.settings.key_file):
            for host in self.hosts:
                self.fail(host, f"key_file {self.settings.key_file} does not exist")
        self.each(self._connect)
        if self.known_hosts:
            self.known_hosts.save_new()
        if self.probe:
            self._place()
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
            head = self.head.connection.host if isinstance(self.head, SshHost) else ""
            host.probe(head)

    def _place(self):
        """Decide the address Ray uses for each probed node (see node_address), once the
        head is known; nodes of a task that does not reach the head keep none."""
        head = self.head
        if not isinstance(head, SshHost) or head not in self.ready:
            return
        try:
            head.ip = node_address.head_ip(head.facts)
        except node_address.AddressUnknown as error:
            self.fail(head, str(error))
            return
        self.each(lambda host: self._place_towards(host, head.ip),
                  [host for host in self.ready if host is not head])

    def _place_towards(self, host, head):
        """A node's address: its source address towards the head at ``head``, asked again
        towards that address when the probe's route went elsewhere."""
        address = node_address.towards_head(host.facts["address"].get("to_head", {}), head)
        if address is None:
            answer = host.state("route", head, str(self.settings.port),
                                what="find its address towards the head")
            route = json.loads(answer.stdout.strip().splitlines()[-1])
            address = node_address.towards_head(route, head)
            if address is None:
                raise StepError(str(node_address.no_route(route, head)))
        host.ip = address

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

    def finish(self, task, *arguments):
        """Print the summary; exit non-zero naming the failed hosts, if any, and the command
        that retries ``task`` (with its positional ``arguments``) on them."""
        report.summary(task, self.outcomes, tracebacks.log_path() if self.logged else None)
        report.verdict(task, self.outcomes, self.settings, config.DEFAULTS, arguments)
