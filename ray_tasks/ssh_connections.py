"""SSH connections as ssh would make them: ssh_config, jump hosts, a liveness watchdog, and
one line saying why a connection failed."""

import socket
import threading

import fabric
import paramiko

from .hostkeys import HostKeyRefused, HostKeyRevoked, known_hosts_name, removal_command

# Pinned over ~/.invoke.yaml and ~/.fabric.yaml: with a pty, what a command reads on stdin
# (a sudo password) is echoed into its captured output; echo prints every command; a dry
# run or watchers answering prompts would make every result a lie.
QUIET = {"run": {"hide": True, "warn": True, "in_stream": False, "pty": False,
                 "fallback": False, "echo": False, "echo_stdin": False, "dry": False,
                 "asynchronous": False, "disown": False, "watchers": []}}


# Offered first: AES-GCM, an AEAD cipher (no separate MAC, which paramiko checks byte by byte
# in Python on every packet): a connection and a command cost the controller ~15% less CPU.
# paramiko lists it last, after the CTR and CBC modes; its key exchanges are kept as they are.
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def gcm_first_transport(*args, **kwargs):
    """A paramiko Transport (SSHClient's ``transport_factory``) offering AES-GCM first, then
    paramiko's other ciphers in its own order."""
    transport = paramiko.Transport(*args, **kwargs)
    options = transport.get_security_options()
    options.ciphers = AEAD_CIPHERS + tuple(name for name in options.ciphers
                                           if name not in AEAD_CIPHERS)
    return transport


def fabric_config(settings, overrides=QUIET):
    """The Fabric configuration of a task's connections, made once and shared by them (as
    Fabric's own groups share one): ``overrides`` (QUIET for ray-tasks' own steps) and the
    ssh_config file, read once."""
    return fabric.Config(overrides=overrides, user_ssh_path=settings.ssh_config)


def ssh_connection(node, settings, config):
    """The Fabric connection to ``node``, with ``config`` (a fabric_config). The ssh_config
    file applies as with ssh (host aliases, HostName, User, Port, IdentityFile, ProxyJump,
    ProxyCommand), then /etc/ssh/ssh_config; nodes.txt's user and port and the settings win
    over it."""
    connect_kwargs = {
        "banner_timeout": settings.connect_timeout,
        "auth_timeout": settings.connect_timeout,
        "transport_factory": gcm_first_transport,
    }
    if settings.key_file:
        connect_kwargs.update(key_filename=settings.key_file, look_for_keys=False)
    connection = fabric.Connection(
        node.host,
        user=node.user or settings.username or None,
        port=node.port,
        connect_timeout=settings.connect_timeout,
        connect_kwargs=connect_kwargs,
        config=config,
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
                              auth_timeout=settings.connect_timeout,
                              transport_factory=gcm_first_transport)
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
