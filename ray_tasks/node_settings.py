"""The per-node settings written after a node's address in nodes.txt, and what a node starts
Ray with once they are laid over the configured ones.

    10.0.0.10                 cpus=16 gpus=0            # head
    ubuntu@10.0.0.11          cpus=64 gpus=8 resource.ssd=2
    gw.example.org:2201       ray_ip=10.1.0.21          # behind NAT

A node's value wins over the config/flag value; a key not given takes the configured value,
and without one Ray decides (all logical CPUs, the GPUs it finds, its own memory sizes).
"""

import dataclasses
import ipaddress
import math
import re

from . import config

# Names Ray gives its own resources: set by cpus=, gpus=, memory=, object_store_memory=.
RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_NUMBER = re.compile(r"^\d+(\.\d+)?$")


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """What one nodes.txt line sets for its node (None: not set there); ``resources`` holds
    the custom resources as sorted ``(name, amount)`` pairs."""

    cpus: int | None = None
    gpus: int | None = None
    memory: int | None = None
    object_store_memory: int | None = None
    resources: tuple = ()
    ray_ip: str | None = None

    def over(self, settings):
        """These settings laid over the configured ``settings`` (num_workers gives cpus,
        object_store_memory its own): the node's values win."""
        return dataclasses.replace(
            self,
            cpus=self.cpus if self.cpus is not None else settings.num_workers,
            object_store_memory=self.object_store_memory or settings.object_store_memory)


def _count(text):
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a whole number (0 or more)")
    return int(text)


def _size(key):
    def parse(text):
        try:
            return config.parse_size(text, key)
        except config.ConfigError as error:
            raise ValueError(str(error).partition(": ")[2]) from None
    return parse


def _ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _amount(text):
    """A custom resource's amount: a non-negative number, an int when it is whole."""
    if not _NUMBER.match(text) or not math.isfinite(float(text)):
        raise ValueError(f"{text!r} is not a number (0 or more)")
    return int(text) if text.isdigit() else float(text)


_PARSERS = {"cpus": _count, "gpus": _count, "memory": _size("memory"),
            "object_store_memory": _size("object_store_memory"), "ray_ip": _ip}


def _resource_name(key):
    name = key[len("resource."):]
    if not _RESOURCE_NAME.match(name) or name in RAY_RESOURCES:
        raise ValueError(f"bad resource name {name!r} (letters, digits, _ and -, not one of "
                         f"{', '.join(RAY_RESOURCES)}: use cpus=, gpus=, memory=, "
                         "object_store_memory=)")
    return name


def parse_words(words):
    """The NodeSettings of the ``key=value`` words after an address; ValueError with a
    short reason for an unknown key, a bad value or a key given twice."""
    values, resources, seen = {}, {}, set()
    for word in words:
        key, equals, text = word.partition("=")
        if not equals or not text:
            raise ValueError(f"expected key=value after the address, got {word!r}")
        if key in seen:
            raise ValueError(f"{key} given twice")
        seen.add(key)
        if key.startswith("resource."):
            resources[_resource_name(key)] = _amount(text)
        elif key in _PARSERS:
            try:
                values[key] = _PARSERS[key](text)
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None
        else:
            raise ValueError(f"unknown key {key!r} (known: {', '.join(_PARSERS)}, "
                             "resource.NAME)")
    return NodeSettings(**values, resources=tuple(sorted(resources.items())))
