"""What a task knows about each node: the probe's answer (``NodeFacts``, read once, never
changed) and what the task's steps learn or change on the node since (``NodeState``).

The probe is node_scripts/node_state.py's ``probe`` action; its JSON object has exactly the
fields of NodeFacts (a test runs the real probe to keep them in step).
"""

import dataclasses

from .cluster_record import ClusterRecord


@dataclasses.dataclass(frozen=True)
class NodeFacts:
    """A node as the probe found it at the start of the task."""

    hostname: str
    home: str  # the absolute installation directory
    python: str  # the version of the node's plain Python (ray.python)
    venv_support: bool  # whether that Python can build venvs
    root: bool  # whether the SSH user is root
    machine: str
    glibc: str  # "" without glibc
    ray: str | None  # the Ray release of the current venv (None: no complete venv)
    venv: str | None  # the current venv's path
    venv_name: str | None
    requirements: str | None  # digest of the worker requirements the current venv holds
    selftest: str | None  # when the current venv last passed the self-test (UTC, ISO 8601)
    worker_code: str | None  # digest of the worker code the node points at
    cluster: ClusterRecord | None  # cluster.json: how the running cluster was started
    raylet: bool  # Ray of this installation runs here
    gcs: bool  # ... as the head
    processes: int
    workers: int
    busy: tuple  # titles of the workers running a task
    port_free: bool  # ray.port is free here
    disk_free: int  # bytes free for the installation directory
    shm_free: int  # bytes free in /dev/shm
    address: dict  # what node_address decides from: ssh_server, to_head
    state_dir: str  # .ray-tasks: "ours", "foreign" or "absent"
    setup_env: str  # setup-env.sh: "ours", "legacy", "foreign" or "absent"
    setup_env_sha256: str | None
    venvs: tuple  # the entries of .ray-tasks/venvs
    codes: tuple  # the entries of .ray-tasks/code
    uvs: tuple  # the entries of .ray-tasks/uv (a folder per uv release)
    worker_requirements: str | None  # digest of the worker code's requirements.txt

    @classmethod
    def from_probe(cls, answer):
        """The facts in the probe's JSON object ``answer``; TypeError when its keys are not
        exactly the fields."""
        lists = {"busy", "venvs", "codes", "uvs"}
        facts = {key: tuple(value) if key in lists else value for key, value in answer.items()}
        return cls(**dict(facts, cluster=ClusterRecord.from_json(answer.get("cluster"))))


@dataclasses.dataclass
class NodeState:
    """What the steps of this task learned or changed on a node, starting from its facts."""

    gcs: bool
    raylet: bool
    venv: str | None
    venv_name: str | None
    venvs: list
    requirements: str | None
    worker_code: str | None
    codes: list
    state_dir: str
    setup_env: str
    setup_env_sha256: str | None
    new_venv: str | None = None  # built by this task, not switched to yet
    previous_venv: str | None = None  # the venv before the switch (to switch back to)
    uv: str | None = None  # the uv binary that came up here (None: pip builds the venv)
    no_uv: str | None = None  # why pip builds the venv instead (uv has no build here...)

    @classmethod
    def from_facts(cls, facts):
        """The state of a node as probed."""
        return cls(gcs=facts.gcs, raylet=facts.raylet, venv=facts.venv,
                   venv_name=facts.venv_name, venvs=list(facts.venvs),
                   requirements=facts.requirements, worker_code=facts.worker_code,
                   codes=list(facts.codes), state_dir=facts.state_dir,
                   setup_env=facts.setup_env, setup_env_sha256=facts.setup_env_sha256)
