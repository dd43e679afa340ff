"""One connection per node for the whole task, a bounded pool of threads, a result per host.

Every task goes through a Runner: it connects to the selected nodes in parallel (at most
``parallel`` at a time), probes each once, then runs the task's steps with ``each()``. A host
that fails a step is reported at once (one line, then its output) and left out of the
following steps; the other hosts carry on. What the hosts of a step say when they succeed is
printed when the step ends, each distinct message once with its hosts folded into ranges.
``finish()`` prints the summary (or, with --json, the JSON document) and exits non-zero
naming the failed hosts.

How a host fails: work done on one host is a step, run with ``each()``, and fails by raising
StepError (what it returns is the host's message). Orchestration code, deciding across hosts
outside any step (a preflight check, a node missing from the cluster), calls ``fail()``;
``note()`` sets the message a host shows in the summary. Nothing else writes the outcomes.
"""

import concurrent.futures
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time

import invoke
import paramiko

from . import config, hosts, local_commands, node_address, report, tracebacks
from .hostkeys import KnownHosts
from .hosts import StepError
from .ssh_connections import CONNECT_ERRORS, connect_error, fabric_config


@dataclasses.dataclass
class Outcome:
    """How one host fared: still ok, its last message, the seconds its steps took."""
    ok: bool = True
    message: str = ""
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Results:
    """What one ``each()`` did: the hosts it ran on that succeeded and that failed, in
    nodes-file order."""
    succeeded: list
    failed: list


INTERRUPTED = ("\ninterrupted: the steps under way were cut off; nodes keep what they had "
               "(a new venv or worker code is switched to only once complete): rerun to "
               "finish\n")


class Runner:
    """The hosts of one task, connected and (unless ``probe`` is off) probed, with the
    outcome of each."""

    def __init__(self, settings, nodes, probe=True, head=None):
        self.settings = settings
        report.configure(settings)
        self.probe = probe
        known_hosts = config = None
        if not all(node.is_local for node in nodes):
            known_hosts = KnownHosts(settings.known_hosts, settings.host_key_policy)
            config = fabric_config(settings)
        self.known_hosts = known_hosts
        self.hosts = [hosts.make_host(node, settings, known_hosts, config) for node in nodes]
        self.outcomes = {host.node: Outcome() for host in self.hosts}
        self.logged = False
        self.started = time.monotonic()
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
            host.probe(self.head.ssh_name if self.head else "")

    def _place(self):
        """Decide the address Ray uses for each probed node (see node_address), once the
        head is known; nodes of a task that does not reach the head keep none, and a head
        that has its address already (localhost) needs none decided."""
        head = self.head
        if head is None or head.ip is not None or head not in self.ready:
            return
        try:
            head.ip = head.node.settings.ray_ip or node_address.head_ip(head.facts.address)
        except node_address.AddressUnknown as error:
            self.fail(head, str(error))
            return
        self.each(lambda host: self._place_towards(host, head.ip),
                  [host for host in self.ready if host is not head])

    def _place_towards(self, host, head):
        """A node's address: its ray_ip= in nodes.txt, else its source address towards the
        head at ``head``, asked again towards that address when the probe's route went
        elsewhere."""
        address = host.node.settings.ray_ip or node_address.towards_head(
            host.facts.address.get("to_head", {}), head)
        if address is None:
            answer = host.run_node_script("route", head, str(self.settings.port),
                                          what="find its address towards the head")
            route = hosts.json_answer(answer, "the route lookup's answer is not JSON")
            address = node_address.towards_head(route, head)
            if address is None:
                raise StepError(str(node_address.no_route(route, head)))
        host.ip = address

    @property
    def ready(self):
        """The hosts that have not failed so far."""
        return [host for host in self.hosts if self.outcomes[host.node].ok]

    def host(self, node):
        return next(host for host in self.hosts if host.node == node)

    def fail(self, host, message, output=""):
        """Record that ``host`` failed, and say so (for orchestration code: a step raises
        StepError instead)."""
        outcome = self.outcomes[host.node]
        outcome.ok = False
        outcome.message = message
        report.host_line(host.node, f"FAILED: {message}")
        if output.strip():
            report.host_output(host.node, output)

    def note(self, host, message):
        """Set the message the summary shows for ``host`` (without printing it now)."""
        self.outcomes[host.node].message = message

    def each(self, step, hosts=None, what=None, width=None):
        """Run ``step(host)`` on each of ``hosts`` (default: all ready) in the bounded pool
        (``width`` hosts at once, default ray.parallel); on a terminal, a live line counts
        the hosts done under the label ``what``.

        A step returns a message for the host (or None) or raises StepError. Returns the
        Results: the hosts on which the step succeeded and failed, in nodes-file order. A
        failure is printed at once; the messages of the hosts that succeeded when the step
        ends, each distinct one once.
        """
        hosts = [host for host in (self.ready if hosts is None else hosts)
                 if self.outcomes[host.node].ok]
        if not hosts:
            return Results([], [])
        said = {}
        width = min(width or self.settings.parallel, len(hosts))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=width)
        try:
            with report.progress(what, len(hosts)) as done:
                list(pool.map(lambda host: self._step(step, host, said, done), hosts))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        report.host_lines({host.node: said[host.node] for host in hosts if host.node in said})
        return Results([host for host in hosts if self.outcomes[host.node].ok],
                       [host for host in hosts if not self.outcomes[host.node].ok])

    def interrupt(self, *_signal):
        """Ctrl-C (the SIGINT handler from the moment a runner exists): end the whole process
        at once, wherever it is: the connections drop, which cuts off the steps under way,
        the controller's own commands (pip) are killed, and nothing more runs, no step and
        no clean-up (a closed connection would open again for its next command). Exit 130."""
        local_commands.kill_all()
        report.show_cursor()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.write(2, INTERRUPTED.encode())
        os._exit(130)

    def _step(self, step, host, said, done):
        outcome = self.outcomes[host.node]
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
                outcome.message = said[host.node] = message
        outcome.seconds += time.monotonic() - started
        done()

    def finish(self, task, *arguments, details=None):
        """Print the summary (with --json, the JSON document, with the task's ``details``);
        exit non-zero naming the failed hosts, if any, and the command that retries ``task``
        (with its positional ``arguments``) on them."""
        self.summarize(task, *arguments, details=details)
        report.verdict(task, self.outcomes, self.settings, config.DEFAULTS, arguments)

    def summarize(self, task, *arguments, details=None):
        """Print the summary (with --json, the JSON document) as things stand, without
        ending the task: for a task that goes on (a tunnel) or exits its own way."""
        seconds = time.monotonic() - self.started
        log = tracebacks.log_path() if self.logged else None
        if report.mode.json:
            failed = [str(node) for node, outcome in self.outcomes.items() if not outcome.ok]
            retry = report.retry_command(task, failed, self.settings, config.DEFAULTS,
                                         arguments) if failed else None
            report.json_summary(task, self.outcomes, seconds, log, retry, details)
        else:
            report.summary(task, self.outcomes, seconds, log)
