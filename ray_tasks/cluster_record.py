"""What cluster.json on each node holds: how the running cluster was started.

``inv start`` writes it; a later start (nodes joining a running cluster), ``update``
(starting the cluster again after the switch) and ``restart-workers`` read it back from the
probe, so the cluster keeps the settings it was started with.
"""

import dataclasses
import json

from . import config


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    """The head's address and the settings the cluster was started with (a setting absent
    from an older cluster.json is None). The per-node values are not recorded: they come
    from nodes.txt."""

    head: str
    port: int | None = None
    num_workers: int | str | None = None  # "" when Ray counted each node's CPUs
    object_store_memory: int | str | None = None  # "" when Ray chose the size
    start_args: str | None = None

    SETTINGS = ("num_workers", "port", "object_store_memory", "start_args")

    @classmethod
    def of(cls, settings, address):
        """The record of a cluster started with ``settings``, its head at ``address``."""
        return cls(head=address, port=settings.port, num_workers=settings.num_workers or "",
                   object_store_memory=settings.object_store_memory or "",
                   start_args=settings.start_args)

    @classmethod
    def from_json(cls, mapping):
        """The record read from cluster.json (None for none)."""
        if not mapping:
            return None
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in mapping.items() if key in fields})

    def to_json(self):
        """The text of cluster.json."""
        return json.dumps(dataclasses.asdict(self), indent=2)

    def settings(self, configured):
        """``configured`` settings with the recorded ones in their place (checked again:
        ConfigError)."""
        recorded = {key: getattr(self, key) for key in self.SETTINGS
                    if getattr(self, key) is not None}
        return config.replace(configured, **recorded)
