"""The wheelhouse from node to node: the controller's link carries each wheel once, whatever N.

The controller pushes the wheels of one platform to one of its nodes (the head, where it is
of that platform) over SFTP. That node serves them to the others over the cluster network
(node_scripts/wheel_relay.py, on the cluster's relay port), and each node that has them
serves them in turn: each round, a serving node hands them to at most FANOUT nodes, so the
nodes holding them triple each round and no node sends to everyone. Each node checks every
file against the size and sha256 of the controller's copy before it keeps it. Nodes need no
SSH access to each other. A node that cannot fetch from its peer gets a direct push from the
controller and says why. The relays are ended once every node has its wheels; one left
behind by a task cut short ends by itself after IDLE seconds without a request.
"""

import hashlib
import json
import os

from . import ray_commands, ray_ports, wheelhouse
from .hosts import StepError, json_answer

FANOUT = 2
IDLE = 300  # seconds; long enough for a round on a slow network


def manifest(local_dirs):
    """Each wheel of ``local_dirs``: name -> [size, sha256], what the nodes check."""
    listing = {}
    for folder, name in wheelhouse.wheels(local_dirs):
        digest = hashlib.sha256()
        with open(os.path.join(folder, name), "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        listing[name] = [os.path.getsize(os.path.join(folder, name)), digest.hexdigest()]
    return listing


def next_round(sources, lacking, fanout=FANOUT):
    """The next round: {host that lacks the wheels: the serving host it fetches from}, at
    most ``fanout`` hosts per source, taken in the order of ``lacking``."""
    batch = lacking[:fanout * len(sources)]
    return {host: sources[index % len(sources)] for index, host in enumerate(batch)}


def url(host, settings):
    """Where ``host``'s relay serves."""
    address = f"[{host.ip}]" if ":" in host.ip else host.ip
    return f"http://{address}:{ray_ports.plan(settings.port).relay}"


def last_word(result):
    """Why a relay command failed: the last line it printed on stderr, else its exit."""
    said = result.stderr.strip().splitlines()
    return said[-1] if said else f"exit {result.exited}"


def mib(count):
    return f"{count // 2**20} MiB"


class Relays:
    """The wheels of ``local_dirs`` on their way to the hosts of one platform; ``done`` is
    called with the bytes each host holds once it has them."""

    def __init__(self, settings, local_dirs, done):
        self.settings, self.local_dirs, self.done = settings, local_dirs, done
        self.manifest, self.total = "", 0  # the manifest (JSON), made when a node fetches
        self.pids = {}  # host -> the PID of the relay serving there
        self.refused = ""  # why the first relay could not serve

    def distribute(self, runner, hosts):
        """Give each of ``hosts`` the wheels; returns those that have them."""
        if len(hosts) == 1:
            return runner.each(self.push, hosts).succeeded
        listing = manifest(self.local_dirs)
        self.manifest = json.dumps(listing)
        self.total = sum(size for size, _ in listing.values())
        candidates, seeded = list(hosts), []
        while candidates and not seeded:
            seeded = runner.each(self.seed, [candidates.pop(0)]).succeeded
        have = list(seeded)
        while candidates:
            sources = [host for host in have if host in self.pids]
            plan = next_round(sources, candidates) if sources else \
                dict.fromkeys(candidates)
            candidates = candidates[len(plan):]
            have += runner.each(lambda host: self.take(host, plan[host]), list(plan)).succeeded
        runner.each(self.stop, [host for host in hosts if host in self.pids])
        return have

    def push(self, host):
        """The controller sends ``host`` the wheels it lacks."""
        return f"pushed {mib(wheelhouse.push(host, *self.local_dirs, done=self.done))} " \
               "of wheels"

    def seed(self, host):
        """The first host of the platform: pushed to by the controller, then serving."""
        said = self.push(host)
        self.serve(host)
        return said

    def take(self, host, source):
        """``host`` fetches the wheels from ``source`` (pushed directly when that fails, or
        when no host serves), then serves them."""
        if source is None:
            said = f"{self.push(host)} directly: no node could serve them ({self.refused})"
        else:
            try:
                got = self.fetch(host, source)
                said = f"got {mib(got)} of wheels from a peer node (sha256 checked)"
                self.done(self.total)
            except StepError as error:
                said = f"{self.push(host)} directly: {error.message}"
        self.serve(host)
        return said

    def fetch(self, host, source):
        """Fetch the wheels ``host`` lacks from ``source``'s relay; the bytes fetched."""
        command = ray_commands.wheel_relay(self.settings.python, host.home, "fetch",
                                           url(source, self.settings))
        result = host.run(command, f"fetch the wheels from {source.node}", check=False,
                          stdin=self.manifest)
        if result.exited != 0:
            raise StepError(f"could not fetch them from {source.node}: {last_word(result)}")
        return json_answer(result, "the wheel relay's answer is not JSON")["bytes"]

    def serve(self, host):
        """Start ``host``'s relay; a host that cannot serve only serves no one."""
        command = ray_commands.wheel_relay(self.settings.python, host.home, "serve", host.ip,
                                           ray_ports.plan(self.settings.port).relay, IDLE)
        try:
            result = host.run(command, "serve the wheels", check=False,
                              stdin=self.manifest)
            if result.exited == 0:
                self.pids[host] = json_answer(result, "the relay's answer is not JSON")["pid"]
                return
            reason = last_word(result)
        except StepError as error:
            reason = error.message
        self.refused = self.refused or f"{host.node}: {reason}"

    def stop(self, host):
        """End ``host``'s relay (one that cannot be reached ends by itself when idle)."""
        command = ray_commands.wheel_relay(self.settings.python, host.home, "stop",
                                           self.pids.pop(host))
        try:
            host.run(command, "end the wheel relay", check=False)
        except StepError:
            pass
