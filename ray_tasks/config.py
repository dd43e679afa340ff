"""The ``ray`` configuration section: defaults, and the settings a task runs with.

Invoke layers it: these defaults < invoke.yaml beside tasks.py < INVOKE_RAY_* environment
variables < task flags. A flag given to a task is written into the run's config, so the
task's hooks and the tasks after it on the same command line see it too.
"""

import dataclasses
import os
import re

from . import ray_ports, shell

# Numbers are written as text: Invoke casts an INVOKE_RAY_* value to its default's type,
# and int("abc") there would be a traceback before any check below could name the setting.
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
    "port": "6379",
    "num_workers": "",
    "object_store_memory": "",
    "start_args": "",
    "parallel": "10",
    "connect_timeout": "10",
    "command_timeout": "900",
    "join_timeout": "60",
    "drain_timeout": "600",
    "auth_token_file": "~/.config/ray-tasks/auth_token",
    "known_hosts": "~/.ssh/known_hosts",
    "host_key_policy": "accept-new",
    "ssh_config": "~/.ssh/config",
    "json": False,
    "verbose": False,
    "dry_run": False,
}

HOST_KEY_POLICIES = ("accept-new", "strict", "off")
WHOLE_NUMBERS = ("parallel",)
TIMEOUTS = ("connect_timeout", "command_timeout", "join_timeout", "drain_timeout")
# A week: longer timeouts would overflow the socket options they end up in.
MAX_TIMEOUT = 7 * 24 * 3600
# Settings read as text: every one with a text default but those parsed below.
TEXT = tuple(key for key, default in DEFAULTS.items() if isinstance(default, str)
             and key not in ("port", "num_workers", *WHOLE_NUMBERS, *TIMEOUTS,
                            "object_store_memory", "version"))
# Ray refuses an object store smaller than this (OBJECT_STORE_MINIMUM_MEMORY_BYTES).
MIN_OBJECT_STORE = 75 * 2**20

# Settings that cannot be empty (the others mean "none" or "the default" when empty).
_REQUIRED = ("nodes", "python", "wheel_cache", "auth_token_file", "known_hosts")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_VERSION = re.compile(r"^(\d+(?:\.\d+){0,2})((?:a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


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
    num_workers: int | None  # None: Ray counts the node's logical CPUs
    object_store_memory: int | None
    start_args: str
    parallel: int
    connect_timeout: int
    command_timeout: int
    join_timeout: int
    drain_timeout: int  # restart-workers --rolling: how long a node may take to drain
    auth_token_file: str
    known_hosts: str
    host_key_policy: str
    ssh_config: str
    json: bool  # the summary as one JSON document on stdout, everything else on stderr
    verbose: bool  # the summary table lists every host, not only the failed ones
    dry_run: bool  # connect and probe, say what would be done, change nothing

    @property
    def requirement(self):
        """The pip requirement that installs Ray, e.g. ``ray[default]==2.60.0``."""
        extras = f"[{self.extras}]" if self.extras else ""
        return f"ray{extras}=={self.version}"


def parse_size(text, key="object_store_memory"):
    """Bytes from ``123``, ``200M``, ``1.5G`` or ``512MiB``; None for an empty value.

    Refuses what is not a size and a size below Ray's minimum object store (75 MiB); the
    ConfigError names ``key``."""
    if text in ("", None):
        return None
    match = None if isinstance(text, bool) else _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"{key}: {text!r} is not a size (e.g. 200M, 2G)")
    number, unit = match.groups()
    size = float(number) * 1024 ** " KMGT".index(unit.upper() or " ")
    if size == float("inf"):
        raise ConfigError(f"{key}: {text!r} is too large")
    size = int(size)
    if size < MIN_OBJECT_STORE:
        raise ConfigError(f"{key}: {text!r} is {size} bytes, below Ray's "
                          f"minimum of {MIN_OBJECT_STORE // 2**20}M")
    return size


def normalise_version(value):
    """A Ray release number in its canonical form (``2.60`` -> ``2.60.0``, as Ray reports
    itself), or ConfigError for anything else."""
    if isinstance(value, float):
        raise ConfigError(f"version: {value!r} was read as a number (in YAML 2.60 is 2.6): "
                          "quote it, e.g. '2.60.0'")
    match = None if isinstance(value, bool) else _VERSION.match(str(value).strip())
    if not match:
        raise ConfigError(f"version: {value!r} is not a Ray release number (e.g. 2.60.0)")
    release, *suffixes = match.groups()
    numbers = [str(int(part)) for part in release.split(".")]
    numbers += ["0"] * (3 - len(numbers))
    return ".".join(numbers) + "".join(suffix or "" for suffix in suffixes)


def section(c):
    """``c.config.ray``, made empty where no collection configured it (a project's own
    collection holding our tasks without our defaults): every setting is then its default."""
    if "ray" not in c.config:
        c.config["ray"] = {}
    return c.config.ray


def apply_flags(c, **flags):
    """Write the task flags that were given (not None) into ``c.config.ray``."""
    for key, value in flags.items():
        if value is not None:
            section(c)[key] = value


def settings(c, **flags):
    """Apply the task's flags, then return the checked Settings of ``c.config.ray``."""
    apply_flags(c, **flags)
    values = {key: section(c).get(key, default) for key, default in DEFAULTS.items()}
    return from_mapping(values)


def from_mapping(section):
    """Check and type a plain mapping of the ``ray`` section: every value is checked here,
    whichever layer (default, YAML, environment, flag, an earlier task) it came from."""
    values = dict(DEFAULTS, **section)
    for key in TEXT:
        values[key] = _text(key, values[key])
    values["port"] = whole_number("port", values["port"], highest=ray_ports.HIGHEST_PORT)
    for key in WHOLE_NUMBERS:
        values[key] = whole_number(key, values[key])
    values["num_workers"] = optional_whole_number("num_workers", values["num_workers"])
    for key in TIMEOUTS:
        values[key] = whole_number(key, values[key], highest=MAX_TIMEOUT)
    values["object_store_memory"] = parse_size(values["object_store_memory"])
    for key in ("wheelhouse", "json", "verbose", "dry_run"):
        values[key] = _boolean(key, values[key])
    values["version"] = normalise_version(values["version"])
    values["installation_directory"] = _installation_directory(
        values["installation_directory"])
    _check_choices(values)
    if values["key_file"]:
        values["key_file"] = os.path.expanduser(values["key_file"])
    return Settings(**values)


def replace(settings, **changes):
    """A copy of ``settings`` with some values changed (and checked again)."""
    return from_mapping(dict(dataclasses.asdict(settings), **changes))


def whole_number(key, value, highest=None):
    """``value`` as a positive integer (``10``, ``"10"``, ``10.0``); ``abc``, ``0``, ``2.9``
    and ``True`` are ConfigErrors naming ``key``."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None:
        raise ConfigError(f"{key}: {value!r} is not a whole number")
    if number < 1 or (highest and number > highest):
        allowed = f"1-{highest}" if highest else "at least 1"
        raise ConfigError(f"{key}: must be {allowed}, got {number}")
    return number


def optional_whole_number(key, value):
    """``value`` as a positive integer, or None when it is empty (unset: Ray decides)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return whole_number(key, value)


def _text(key, value):
    """A setting that holds text: None (an empty YAML value) reads as empty."""
    if isinstance(value, (dict, list, tuple)):
        raise ConfigError(f"{key}: expected a single value, got {value!r}")
    text = "" if value is None else str(value)
    if not text and key in _REQUIRED:
        raise ConfigError(f"{key} is empty: set it (default {DEFAULTS[key]!r}) or unset it")
    return text


def _installation_directory(path):
    """An absolute path, ``~`` or ``~/...``: a relative one would depend on the SSH login's
    working directory."""
    if not path:
        raise ConfigError("installation_directory is empty: set it to an absolute path or "
                          "one under ~/, e.g. ~/ray or /opt/ray")
    if not (path == "~" or path.startswith(("~/", "/"))):
        raise ConfigError(f"installation_directory: {path!r} is relative: give an absolute "
                          "path or one under ~/, e.g. ~/ray or /opt/ray")
    return path


def _check_choices(values):
    """The settings whose value is one of a set, or must have a shape."""
    if values["host_key_policy"] not in HOST_KEY_POLICIES:
        raise ConfigError(
            f"host_key_policy: {values['host_key_policy']!r} is not one of "
            + ", ".join(HOST_KEY_POLICIES)
        )
    if values["extras"] and not re.match(r"^[A-Za-z0-9_,-]+$", values["extras"]):
        raise ConfigError(f"extras: {values['extras']!r} is not a list of pip extras")
    try:
        shell.split_args(values["start_args"])
    except ValueError as error:
        raise ConfigError(f"start_args: {values['start_args']!r} cannot be split like a shell "
                          f"would ({error}): balance its quotes") from None


def _boolean(key, value):
    """True/false from a flag, YAML or the environment (1/0, yes/no, on/off, true/false)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: {value!r} is not true or false")
