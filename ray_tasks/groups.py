"""The cluster's nodes as Fabric groups, for a project's own tasks: each connection made as
ray-tasks makes its own (nodes.txt's users and ports, key_file, ssh_config with its jump
hosts, the host-key policy, the timeouts, the liveness watchdog) and opened up front, at most
``parallel`` at a time."""

import concurrent.futures

import fabric
from fabric.exceptions import GroupException
from invoke.exceptions import Exit

from .hostkeys import KnownHosts
from .hosts import SshHost
from .ssh_connections import CONNECT_ERRORS, connect_error, fabric_config


class BoundedThreadingGroup(fabric.ThreadingGroup):
    """A ThreadingGroup that works on at most ``parallel`` hosts at once (Fabric's own starts
    a thread for every host). Results are Fabric's: a GroupResult, or a GroupException
    holding it when any host failed."""

    parallel = 10

    def _do(self, method, *args, **kwargs):
        workers = max(1, min(self.parallel, len(self)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [(each, pool.submit(getattr(each, method), *args, **kwargs))
                       for each in self]
        results = fabric.GroupResult()
        for each, future in futures:
            results[each] = future.exception() or future.result()
        if results.failed:
            raise GroupException(results)
        return results


def run_config(settings):
    """The Fabric configuration of a project's connections: Fabric's defaults (output shown,
    a failed command raises), with ray-tasks' command timeout."""
    return {"timeouts": {"command": settings.command_timeout}}


def open_hosts(settings, nodes):
    """SshHosts of ``nodes``, connected at most ``parallel`` at a time, new host keys
    recorded; a node that cannot be reached ends the task naming it and why."""
    known_hosts = KnownHosts(settings.known_hosts, settings.host_key_policy)
    config = fabric_config(settings, run_config(settings))
    hosts = [SshHost(node, settings, known_hosts, config) for node in nodes]
    with concurrent.futures.ThreadPoolExecutor(max_workers=settings.parallel) as pool:
        errors = list(pool.map(_open, hosts))
    known_hosts.save_new()
    failed = [f"{host.node}: {error}" for host, error in zip(hosts, errors) if error]
    if failed:
        for host in hosts:
            host.close()
        raise Exit("error: cannot connect: " + "; ".join(failed), code=1)
    return hosts


def _open(host):
    """Open ``host``'s connection: None, or the line saying why it failed."""
    try:
        host.open()
    except CONNECT_ERRORS as error:
        return connect_error(error, host)
    return None


def group(hosts, serial, parallel):
    """A SerialGroup of the hosts' connections, or a BoundedThreadingGroup working on at
    most ``parallel`` at once."""
    connections = [host.connection for host in hosts]
    if serial:
        return fabric.SerialGroup.from_connections(connections)
    bounded = BoundedThreadingGroup.from_connections(connections)
    bounded.parallel = parallel
    return bounded
