"""The ``ray`` configuration section: defaults, and the settings a task runs with.

Invoke layers it: these defaults < invoke.yaml beside tasks.py < INVOKE_RAY_* environment
variables < task flags. A flag given to a task is written into the run's config, so the
task's hooks and the tasks after it on the same command line see it too.
"""

import dataclasses
import os
import re

DEFAULTS = {
    "nodes": "nodes.txt",
    "hosts": "",
    "username": "",
    "key_file": "",
    "installation_directory": "~/ray",
    "python": "python3",
    "version": "2.60.0",
    "extras": "default",
    "wheelhouse": False,
    "wheel_cache": "~/.cache/ray-tasks/wheels",
    "worker_dir": "example_ray_code",
    "port": 6379,
    "num_workers": 10,
    "object_store_memory": "",
    "start_args": "",
    "parallel": 10,
    "connect_timeout": 10,
    "command_timeout": 900,
    "join_timeout": 60,
    "auth_token_file": "~/.config/ray-tasks/auth_token",
    "known_hosts": "~/.ssh/known_hosts",
    "host_key_policy": "accept-new",
    "ssh_config": "~/.ssh/config",
}

HOST_KEY_POLICIES = ("accept-new", "strict", "off")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


class ConfigError(Exception):
    """A configuration value that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved ``ray`` section, checked and typed."""

    nodes: str
    hosts: str
    username: str
    key_file: str
    installation_directory: str
    python: str
    version: str
    extras: str
    wheelhouse: bool
    wheel_cache: str
    worker_dir: str
    port: int
    num_workers: int
    object_store_memory: int | None
    start_args: str
    parallel: int
    connect_timeout: int
    command_timeout: int
    join_timeout: int
    auth_token_file: str
    known_hosts: str
    host_key_policy: str
    ssh_config: str

    @property
    def requirement(self):
        """The pip requirement that installs Ray, e.g. ``ray[default]==2.60.0``."""
        extras = f"[{self.extras}]" if self.extras else ""
        return f"ray{extras}=={self.version}"


def parse_size(text):
    """Bytes from ``123``, ``200M``, ``1.5G`` or ``512MiB``; None for an empty value."""
    if text in ("", None):
        return None
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"object_store_memory: {text!r} is not a size (e.g. 200M, 2G)")
    number, unit = match.groups()
    power = " KMGT".index(unit.upper() or " ")
    return int(float(number) * 1024**power)


def apply_flags(c, **flags):
    """Write the task flags that were given (not None) into ``c.config.ray``."""
    for key, value in flags.items():
        if value is not None:
            c.config.ray[key] = value


def settings(c, **flags):
    """Apply the task's flags, then return the checked Settings of ``c.config.ray``."""
    apply_flags(c, **flags)
    section = {key: c.config.ray.get(key, default) for key, default in DEFAULTS.items()}
    return from_mapping(section)


def from_mapping(section):
    """Check and type a plain mapping of the ``ray`` section."""
    values = dict(DEFAULTS, **section)
    for key in ("port", "num_workers", "parallel", "connect_timeout", "command_timeout",
                "join_timeout"):
        values[key] = _positive_int(key, values[key])
    values["object_store_memory"] = parse_size(values["object_store_memory"])
    values["wheelhouse"] = _boolean(values["wheelhouse"])
    for key in ("username", "key_file", "hosts", "start_args", "extras"):
        values[key] = str(values[key] or "")
    if values["host_key_policy"] not in HOST_KEY_POLICIES:
        raise ConfigError(
            f"host_key_policy: {values['host_key_policy']!r} is not one of "
            + ", ".join(HOST_KEY_POLICIES)
        )
    if not re.match(r"^[0-9][0-9A-Za-z.+!-]*$", str(values["version"])):
        raise ConfigError(f"version: {values['version']!r} is not a Ray release number")
    if values["extras"] and not re.match(r"^[A-Za-z0-9_,-]+$", values["extras"]):
        raise ConfigError(f"extras: {values['extras']!r} is not a list of pip extras")
    if values["key_file"]:
        values["key_file"] = os.path.expanduser(values["key_file"])
    return Settings(**values)


def replace(settings, **changes):
    """A copy of ``settings`` with some values changed (and checked again)."""
    return from_mapping(dict(dataclasses.asdict(settings), **changes))


def _positive_int(key, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a whole number") from None
    if number < 1:
        raise ConfigError(f"{key}: must be at least 1, got {number}")
    return number


def _boolean(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
