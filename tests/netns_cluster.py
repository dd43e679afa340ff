"""Test hosts on this machine: each a network, PID, mount and UTS namespace running sshd.

Every host has its own address on a private subnet joined by a bridge (no default route,
no NAT), its own /root, /tmp, /dev/shm, /run and /etc/hosts, its own hostname, and a real
OpenSSH sshd as its first process with a host key of its own and key-only root login.
Killing that first process ends everything in the host (the kernel kills the rest of a
PID namespace with its init). Used by the test suite and the benchmarks; needs root.

``NetnsCluster(count, bastion=True)`` puts the hosts on a second, private subnet
(10.214.<k>.0/24, its bridge without an address here and an ``unreachable`` route to it, so
this machine cannot reach them and no packet for them leaves it) and adds a host named
``bastion`` (sshd only) with one leg on each subnet: the hosts are reachable only through
it (``ssh -J`` / ProxyJump, ProxyCommand ``ssh -W``), as machines behind a jump host are.
``ssh()`` goes through the bastion for them by itself.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

SSHD = "/usr/sbin/sshd"


def unavailable_reason():
    """Why namespaced hosts cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network, PID and mount namespaces)"
    for tool in (SSHD, shutil.which("ip"), shutil.which("unshare"), shutil.which("ssh-keygen")):
        if not tool or not os.path.exists(tool):
            return (f"missing {tool or 'ip/unshare/ssh-keygen'} "
                    "(apt-get install openssh-server iproute2)")
    return None


def _run(*args):
    subprocess.run(args, check=True, capture_output=True, text=True)


class Host:
    """A test host; ``legs`` are its (veth, bridge, address) network links, the first one
    (``veth``, ``ip``) being the one it is reached and runs sshd on."""

    def __init__(self, name, ip, namespace, veth, folder, bridge, more_legs=()):
        self.name, self.ip, self.namespace = name, ip, namespace
        self.veth, self.folder = veth, folder
        self.legs = [(veth, bridge, ip), *more_legs]
        self.process = None

    def init_pid(self):
        """The PID (in this machine's view) of the host's first process, sshd."""
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as handle:
                children = handle.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None


class NetnsCluster:
    """``count`` hosts named h1..hN on 10.213.<k>.0/24, built by ``start()``, removed by
    ``close()`` (which ends only the processes it started, by PID); as a context manager,
    ``with NetnsCluster(count) as cluster:`` does both. Clusters living at the same time
    need different ``tag``s (default: from this process's PID)."""

    def __init__(self, count, base_dir=None, tag=None, bastion=False):
        tag = os.getpid() % 10000 if tag is None else tag
        self.tag = tag
        self.subnet = f"10.213.{tag % 250}"
        self.bridge = f"rtbr{tag}"
        self.private_subnet = f"10.214.{tag % 250}" if bastion else None
        self.private_bridge = f"rtpb{tag}" if bastion else None
        self.base = base_dir or f"/var/tmp/ray-tasks-hosts-{tag}"
        self.key = os.path.join(self.base, "client_key")
        self.known_hosts = os.path.join(self.base, "known_hosts")
        subnet, bridge = (self.private_subnet, self.private_bridge) if bastion else (
            self.subnet, self.bridge)
        self.hosts = [
            Host(f"h{i}", f"{subnet}.{10 + i}", f"rt{tag}h{i}", f"rt{tag}v{i}",
                 os.path.join(self.base, f"h{i}"), bridge)
            for i in range(1, count + 1)
        ]
        self.bastion = None
        if bastion:
            self.bastion = Host("bastion", f"{self.subnet}.9", f"rt{tag}b", f"rt{tag}vb",
                                os.path.join(self.base, "bastion"), self.bridge,
                                [(f"rt{tag}wb", self.private_bridge, f"{subnet}.9")])
        self._bridges = []

    @property
    def unused_ip(self):
        """An address on the hosts' subnet where no host answers."""
        return f"{self.subnet}.99"

    @property
    def machines(self):
        """Every host, the bastion (if any) first."""
        return ([self.bastion] if self.bastion else []) + self.hosts

    def __enter__(self):
        return self.start()

    def __exit__(self, *exception):
        self.close()

    def start(self):
        try:
            os.makedirs(self.base, exist_ok=True)
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
            self._add_bridge(self.bridge, f"{self.subnet}.1/24")
            if self.bastion:
                self._add_bridge(self.private_bridge, None)
                _run("ip", "route", "add", "unreachable", f"{self.private_subnet}.0/24")
            for host in self.machines:
                self._start_host(host)
            for host in self.machines:
                self._wait_ssh(host)
        except BaseException:
            self.close()
            raise
        return self

    def _add_bridge(self, name, address):
        _run("ip", "link", "add", name, "type", "bridge")
        self._bridges.append(name)
        if address:
            _run("ip", "addr", "add", address, "dev", name)
        _run("ip", "link", "set", name, "up")

    def _start_host(self, host):
        os.makedirs(host.folder)
        for sub in ("root", "tmp"):
            os.makedirs(os.path.join(host.folder, sub))
        os.chmod(os.path.join(host.folder, "tmp"), 0o1777)
        with open(os.path.join(host.folder, "hosts"), "w") as handle:
            handle.write("127.0.0.1 localhost\n")
            handle.write(f"127.0.1.1 {host.name}\n")
            for other in self.machines:
                if other is not host:
                    handle.write(f"{other.ip} {other.name}\n")
        host_key = os.path.join(host.folder, "ssh_host_ed25519_key")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
        shutil.copy(self.key + ".pub", os.path.join(host.folder, "authorized_keys"))
        config = os.path.join(host.folder, "sshd_config")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "Port 22", f"ListenAddress {host.ip}", f"HostKey {host_key}",
                f"AuthorizedKeysFile {host.folder}/authorized_keys",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
                "PidFile none", "Subsystem sftp internal-sftp", "MaxStartups 100",
                "MaxSessions 100", "",
            ]))
        _run("ip", "netns", "add", host.namespace)
        inside = ("ip", "netns", "exec", host.namespace)
        for number, (veth, bridge, address) in enumerate(host.legs):
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
            _run("ip", "link", "set", veth + "p", "netns", host.namespace)
            _run("ip", "link", "set", veth, "master", bridge, "up")
            _run(*inside, "ip", "link", "set", veth + "p", "name", f"eth{number}")
            _run(*inside, "ip", "addr", "add", f"{address}/24", "dev", f"eth{number}")
            _run(*inside, "ip", "link", "set", f"eth{number}", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        self._boot(host)

    def _boot(self, host):
        """Start the host's namespaces with sshd as their first process."""
        config = os.path.join(host.folder, "sshd_config")
        boot = " && ".join([
            f"hostname {host.name}",
            f"mount --bind {host.folder}/root /root",
            f"mount --bind {host.folder}/tmp /tmp",
            "mount -t tmpfs -o size=1g tmpfs /dev/shm",
            "mount -t tmpfs tmpfs /run",
            "mkdir -p /run/sshd",
            f"mount --bind {host.folder}/hosts /etc/hosts",
            f"exec {SSHD} -D -e -f {config}",
        ])
        log = open(os.path.join(host.folder, "boot.log"), "w")
        host.process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "unshare", "--pid", "--fork", "--mount",
             "--uts", "--mount-proc", "--kill-child=SIGKILL", "sh", "-c", boot],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()

    def _wait_ssh(self, host, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.process.poll() is not None:
                break
            if self._answers_ssh(host):
                return
            time.sleep(0.1)
        with open(os.path.join(host.folder, "boot.log")) as handle:
            raise RuntimeError(f"host {host.name} did not start sshd: {handle.read()}")

    def _answers_ssh(self, host):
        """Whether the host's sshd greets (asked from inside the host behind a bastion)."""
        if host.legs[0][1] == self.bridge:
            try:
                with socket.create_connection((host.ip, 22), timeout=1) as connection:
                    return connection.recv(4).startswith(b"SSH-")
            except OSError:
                return False
        check = ("import socket; s = socket.create_connection((%r, 22), timeout=1); "
                 "assert s.recv(4).startswith(b'SSH-')" % host.ip)
        return subprocess.run(["ip", "netns", "exec", host.namespace, sys.executable, "-c",
                               check], capture_output=True).returncode == 0

    def ssh_options(self):
        """The ssh options of the test hosts: the cluster's key and a known_hosts of its own."""
        return ["-i", self.key, "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.base}/test_known_hosts",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=5"]

    def proxy_command(self):
        """A ProxyCommand that reaches ``%h:%p`` through the bastion."""
        return " ".join(["ssh", "-F", "/dev/null", *self.ssh_options(), "-W", "%h:%p",
                         f"root@{self.bastion.ip}"])

    def ssh_args(self, host, command):
        """The ssh command line that runs ``command`` on ``host`` (through the bastion for
        a host behind it)."""
        through = []
        if self.bastion and host is not self.bastion:
            through = ["-o", f"ProxyCommand={self.proxy_command()}"]
        return ["ssh", *self.ssh_options(), *through, f"root@{host.ip}", command]

    def ssh(self, host, command, timeout=120):
        """Run a command on a host over real SSH; returns the CompletedProcess."""
        return subprocess.run(self.ssh_args(host, command), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def stop_host(self, host):
        """End a host: SIGKILL its first process, which ends everything inside it."""
        pid = host.init_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
        if host.process:
            try:
                host.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()

    def restart_host(self, host):
        """Boot a stopped host again, as after a reboot: its disk (/root) is kept."""
        self._boot(host)
        self._wait_ssh(host)

    def close(self):
        for host in self.machines:
            if host.process:
                self.stop_host(host)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            for veth, _, _ in host.legs:
                subprocess.run(["ip", "link", "del", veth], capture_output=True)
        if self.private_bridge in self._bridges:
            subprocess.run(["ip", "route", "del", "unreachable", f"{self.private_subnet}.0/24"],
                           capture_output=True)
        for bridge in self._bridges:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
