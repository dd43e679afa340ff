"""The cluster a task acts on: its settings, the nodes file, the nodes selected with --hosts
and one runner over them (plus the head when the task needs it)."""

import functools

from . import auth_token, config, inventory
from .runner import Runner
from .user_errors import user_errors


class Cluster:
    """The settings, the nodes file and a runner over the selected nodes (plus the head);
    ``probe`` None probes the nodes only for a dry run."""

    def __init__(self, c, with_head=False, head_only=False, probe=True, **flags):
        with user_errors():
            self.settings = config.settings(c, **flags)
        with user_errors():
            self.nodes = inventory.load_nodes(self.settings.nodes)
            self.selected = inventory.select(self.nodes, self.settings.hosts)
        self.local = self.nodes[0].is_local
        probe = self.settings.dry_run if probe is None else probe
        reached = [self.nodes[0]] if head_only else list(self.selected)
        if with_head and self.nodes[0] not in reached:
            reached.insert(0, self.nodes[0])
        with user_errors():
            self.runner = Runner(self.settings, reached, probe=probe, head=self.nodes[0])

    @functools.cached_property
    def token(self):
        """The cluster's Ray token, from the controller's auth_token_file (made if missing)."""
        with user_errors():
            return auth_token.load_or_create(self.settings.auth_token_file)

    @property
    def head(self):
        return self.runner.host(self.nodes[0])

    def ray_port(self):
        """The cluster's port (all its other ports derive from it): the running head's
        recorded one, else ray.port."""
        record = self.head.facts.cluster if self.head.state.gcs else None
        return record.port if record and record.port else self.settings.port

    def selected_hosts(self):
        """The ready hosts among those selected with --hosts."""
        return [host for host in self.runner.ready if host.node in self.selected]

    def head_selected(self):
        return self.nodes[0] in self.selected

    def stop_here(self, task):
        """End the task now if any host failed (preflight: nothing was touched)."""
        if len(self.runner.ready) < len(self.runner.hosts):
            self.runner.finish(task)
