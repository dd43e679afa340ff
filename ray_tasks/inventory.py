"""nodes.txt: one node per line, ``[user@]host[:port]`` then optional ``key=value`` settings
(node_settings.py), the first node is the head."""

import dataclasses
import ipaddress
import os
import re

from .node_settings import NodeSettings, parse_words

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")

_HOST_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_USER_CHARS = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
_SCOPE_CHARS = re.compile(r"^[A-Za-z0-9._-]{1,15}$")


class InventoryError(Exception):
    """A problem with nodes.txt or with the hosts selected from it."""


@dataclasses.dataclass(frozen=True)
class Node:
    """One machine of the cluster, as written in nodes.txt (``str()`` gives its address)."""

    host: str
    user: str | None = None
    port: int | None = None
    line: int = 0
    settings: NodeSettings = NodeSettings()

    @property
    def is_local(self):
        """True for a bare localhost entry: run on this machine, without SSH."""
        return self.host in LOCAL_NAMES and self.user is None and self.port is None

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"


def parse_line(text):
    """Parse one ``[user@]host[:port]`` entry (comments already removed) into a Node.

    Raises ValueError with a short reason when the entry is malformed.
    """
    user = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        if not _USER_CHARS.match(user):
            raise ValueError(f"bad user name {user!r}")
    port = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("missing ']' after an IPv6 address")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected text {rest!r} after ']'")
            port = _parse_port(rest[1:])
        _check_ipv6(host)
    elif text.count(":") > 1:
        host = text
        _check_ipv6(host)
    else:
        host, colon, port_text = text.partition(":")
        if colon:
            port = _parse_port(port_text)
        if not host or not _HOST_CHARS.match(host) or host.startswith("-"):
            raise ValueError(f"bad host name {host!r}")
    return Node(host=host, user=user, port=port)


def _parse_port(text):
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"bad port {text!r} (expected 1-65535)")
    return int(text)


def _check_ipv6(host):
    """An IPv6 address, with an optional ``%scope`` naming an interface (or its number)."""
    address, percent, scope = host.partition("%")
    if percent and not _SCOPE_CHARS.match(scope):
        raise ValueError(f"bad IPv6 scope {scope!r} in {host!r} (an interface name such as "
                         "eth0, or its number)")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise ValueError(f"bad IPv6 address {host!r}") from None


def machine_key(node):
    """What makes two entries the same machine: the host (case-insensitive, IPv6 in one
    written form, an interface scope kept as written) and the port (22 when none is
    given); the user does not count."""
    if ":" in node.host:
        address, percent, scope = node.host.partition("%")
        return ipaddress.IPv6Address(address).compressed + percent + scope, node.port or 22
    return node.host.lower().rstrip("."), node.port or 22


def parse_nodes(text, filename="nodes.txt"):
    """Parse the text of a nodes file into a list of Nodes, the head first.

    Every error names ``file:line`` and the offending text.
    """
    nodes = []
    seen = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        where = f"{filename}:{number}"
        address, *words = entry.split()
        try:
            node = dataclasses.replace(parse_line(address), line=number,
                                       settings=parse_words(words))
        except ValueError as error:
            raise InventoryError(f"{where}: {error} in {entry!r}") from None
        key = machine_key(node)
        if key in seen:
            raise InventoryError(
                f"{where}: duplicate node {entry!r} (already on line {seen[key]})"
            )
        seen[key] = number
        nodes.append(node)
    if not nodes:
        raise InventoryError(f"{filename}: no nodes listed (one [user@]host[:port] per line)")
    if len(nodes) > 1 and any(node.is_local for node in nodes):
        local = next(node for node in nodes if node.is_local)
        raise InventoryError(
            f"{filename}:{local.line}: {local.host!r} only works as the sole node; "
            "list this machine by an address the other nodes can reach"
        )
    return nodes


def load_nodes(path):
    """Read and parse a nodes file; a missing file is an InventoryError that says what to do."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InventoryError(
            f"{path}: no such file. List your machines there, one [user@]host[:port] per "
            "line, the head first (see nodes.txt.example); for a one-node cluster on this "
            "machine: echo localhost > nodes.txt"
        ) from None
    except OSError as error:
        raise InventoryError(f"{path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise InventoryError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} "
                             f"at offset {error.start}): save it as UTF-8") from None
    return parse_nodes(text, filename=path)


def select(nodes, hosts):
    """The nodes named in ``hosts`` (comma-separated, as in nodes.txt or by host name).

    An empty ``hosts`` selects every node. A name that matches no node is an error.
    """
    if not hosts:
        return list(nodes)
    wanted = [name.strip() for name in hosts.split(",") if name.strip()]
    chosen = []
    for name in wanted:
        matches = [node for node in nodes if name in (str(node), node.host)]
        if not matches:
            listed = ", ".join(str(node) for node in nodes)
            raise InventoryError(f"--hosts: {name!r} is not in the nodes file ({listed})")
        chosen.extend(node for node in matches if node not in chosen)
    return [node for node in nodes if node in chosen]
