"""The address Ray uses for each node (``--node-ip-address``), decided here and only here.

It must be the address the other nodes reach the node by, which is not always the one the
controller reaches it by: through a jump host the SSH peer is the jump host, behind a NAT
several nodes share one public address. So, from the probe (one round trip):

- a node with ``ray_ip=`` in nodes.txt: that address, whatever the rules below would find
  (the head's is then the address the other nodes look for a route towards);
- the head: the address its SSH server took the controller's connection on (the third
  field of SSH_CONNECTION on the node), else its source address towards its own SSH host
  name;
- every other node: its own source address towards the head, found on the node by a route
  lookup towards the head's SSH host name (the HostName of its ssh_config entry, or its
  nodes.txt name); when the node resolves that name to another address than the head's,
  the node is asked again, towards the head's address;
- ``localhost``: 127.0.0.1 (set by LocalHost).

``Runner._place`` applies these rules right after the probe and sets each ``host.ip``;
nothing else assigns it.
"""

import ipaddress


class AddressUnknown(Exception):
    """No address the other nodes could reach the node by was found; says what to do."""


def _same(first, second):
    try:
        return ipaddress.ip_address(first) == ipaddress.ip_address(second)
    except ValueError:
        return False


def head_ip(found):
    """The head's address, from what its probe ``found`` (its facts' ``address``); raises
    AddressUnknown."""
    if found.get("ssh_server"):
        return found["ssh_server"]
    route = found.get("to_head", {})
    if route.get("source"):
        return route["source"]
    raise AddressUnknown(
        "cannot tell which address the other nodes reach the head by: SSH_CONNECTION is not "
        f"set on it and {route.get('name', 'its SSH host name')} does not route there "
        f"({route.get('error', 'not asked')}): let its sshd set SSH_CONNECTION")


def towards_head(route, head):
    """A node's address from its ``route`` to the head (a probe's ``to_head``, or a second
    lookup's answer); None when that route was towards another address than ``head``, the
    head's address (the node must then be asked towards ``head`` itself)."""
    if route.get("source") and _same(route.get("target"), head):
        return route["source"]
    return None


def no_route(route, head):
    """The AddressUnknown of a node that has no route to the head at ``head``."""
    return AddressUnknown(
        f"no route from this node to the head at {head} ({route.get('error', 'unknown')}): "
        "every node must reach the head; fix the node's routes or firewall")
