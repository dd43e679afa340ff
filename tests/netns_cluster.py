"""Test hosts on this machine: each a network, PID, mount and UTS namespace running sshd.

Every host has its own address on a private subnet joined by a bridge (no default route,
no NAT), its own /root, /tmp, /dev/shm, /run and /etc/hosts, its own hostname, and a real
OpenSSH sshd as its first process with a host key of its own and key-only root login.
Killing that first process ends everything in the host (the kernel kills the rest of a
PID namespace with its init). Used by the test suite and the benchmarks; needs root.
"""

import os
import shutil
import signal
import socket
import subprocess
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
    def __init__(self, name, ip, namespace, veth, folder):
        self.name, self.ip, self.namespace = name, ip, namespace
        self.veth, self.folder = veth, folder
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
    ``close()`` (which ends only the processes it started, by PID). Clusters living at the
    same time need different ``tag``s (default: from this process's PID)."""

    def __init__(self, count, base_dir=None, tag=None):
        tag = os.getpid() % 10000 if tag is None else tag
        self.tag = tag
        self.subnet = f"10.213.{tag % 250}"
        self.bridge = f"rtbr{tag}"
        self.base = base_dir or f"/var/tmp/ray-tasks-hosts-{tag}"
        self.key = os.path.join(self.base, "client_key")
        self.known_hosts = os.path.join(self.base, "known_hosts")
        self.hosts = [
            Host(f"h{i}", f"{self.subnet}.{10 + i}", f"rt{tag}h{i}", f"rt{tag}v{i}",
                 os.path.join(self.base, f"h{i}"))
            for i in range(1, count + 1)
        ]
        self._bridge_up = False

    @property
    def unused_ip(self):
        """An address on the hosts' subnet where no host answers."""
        return f"{self.subnet}.99"

    def start(self):
        try:
            os.makedirs(self.base, exist_ok=True)
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self._bridge_up = True
            _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for host in self.hosts:
                self._start_host(host)
            for host in self.hosts:
                self._wait_ssh(host)
        except BaseException:
            self.close()
            raise
        return self

    def _start_host(self, host):
        os.makedirs(host.folder)
        for sub in ("root", "tmp"):
            os.makedirs(os.path.join(host.folder, sub))
        os.chmod(os.path.join(host.folder, "tmp"), 0o1777)
        with open(os.path.join(host.folder, "hosts"), "w") as handle:
            handle.write("127.0.0.1 localhost\n")
            handle.write(f"127.0.1.1 {host.name}\n")
            for other in self.hosts:
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
        _run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", host.veth + "p")
        _run("ip", "link", "set", host.veth + "p", "netns", host.namespace)
        _run("ip", "link", "set", host.veth, "master", self.bridge, "up")
        inside = ("ip", "netns", "exec", host.namespace)
        _run(*inside, "ip", "link", "set", host.veth + "p", "name", "eth0")
        _run(*inside, "ip", "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
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
            try:
                with socket.create_connection((host.ip, 22), timeout=1) as connection:
                    if connection.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        with open(os.path.join(host.folder, "boot.log")) as handle:
            raise RuntimeError(f"host {host.name} did not start sshd: {handle.read()}")

    def ssh_args(self, host, command):
        """The ssh command line that runs ``command`` on ``host``."""
        return ["ssh", "-i", self.key, "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.base}/test_known_hosts",
                "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=5",
                f"root@{host.ip}", command]

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
        for host in self.hosts:
            if host.process:
                self.stop_host(host)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
        if self._bridge_up:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
