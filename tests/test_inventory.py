"""nodes.txt parsing and host selection."""

import pytest

from ray_tasks import config
from ray_tasks.inventory import InventoryError, Node, load_nodes, parse_nodes, select
from ray_tasks.node_settings import NodeSettings


def test_parses_users_ports_ipv6_and_comments():
    text = """
    # the head first
    head.example            # trailing comment
    alice@10.0.0.2:2222
    [fe80::1]:22
    bob@[2001:db8::7]
    2001:db8::8
    """
    nodes = parse_nodes(text)
    assert nodes == [
        Node("head.example", line=3),
        Node("10.0.0.2", user="alice", port=2222, line=4),
        Node("fe80::1", port=22, line=5),
        Node("2001:db8::7", user="bob", line=6),
        Node("2001:db8::8", line=7),
    ]
    assert str(nodes[1]) == "alice@10.0.0.2:2222"
    assert str(nodes[2]) == "[fe80::1]:22"


@pytest.mark.parametrize("line, reason", [
    ("host:0", "bad port '0'"),
    ("host:65536", "bad port '65536'"),
    ("host:ssh", "bad port 'ssh'"),
    ("a b", "expected key=value after the address, got 'b'"),
    ("$(touch)", "bad host name"),
    ("h;rm -rf", "bad host name 'h;rm'"),
    ("`id`@host", "bad user name"),
    ("[fe80::1", "missing ']'"),
    ("[not-ipv6]:22", "bad IPv6 address"),
    ("-oProxyCommand=x", "bad host name"),
    ("node3 cpus", "expected key=value after the address, got 'cpus'"),
    ("node3 cpus=", "expected key=value after the address, got 'cpus='"),
    ("node3 cores=4", "unknown key 'cores'"),
    ("node3 CPUS=4", "unknown key 'CPUS'"),
    ("node3 cpus=4 cpus=8", "cpus given twice"),
    ("node3 cpus=-1", "cpus: '-1' is not a whole number"),
    ("node3 cpus=1.5", "cpus: '1.5' is not a whole number"),
    ("node3 cpus=٣", "cpus: '٣' is not a whole number"),
    ("node3 gpus=many", "gpus: 'many' is not a whole number"),
    ("node3 memory=lots", "memory: 'lots' is not a size"),
    ("node3 memory=10M", "memory: '10M' is 10485760 bytes, below Ray's minimum of 75M"),
    ("node3 object_store_memory=1X", "object_store_memory: '1X' is not a size"),
    ("node3 object_store_memory=1G object_store_memory=2G", "object_store_memory given twice"),
    ("node3 ray_ip=10.0.0.256", "ray_ip: '10.0.0.256' is not an IP address"),
    ("node3 ray_ip=node2.example", "ray_ip: 'node2.example' is not an IP address"),
    ("node3 resource.ssd=x", "'x' is not a number"),
    ("node3 resource.ssd=-2", "'-2' is not a number"),
    ("node3 resource.ssd=1e400", "'1e400' is not a number"),
    ("node3 resource.ssd=1 resource.ssd=2", "resource.ssd given twice"),
    ("node3 resource.=1", "bad resource name ''"),
    ("node3 resource.CPU=4", "bad resource name 'CPU'"),
    ("node3 resource.node:10.0.0.1=1", "bad resource name 'node:10.0.0.1'"),
    ("node3 resource.a$(id)=1", "bad resource name 'a$(id)'"),
])
def test_malformed_line_names_file_line_and_text(line, reason):
    with pytest.raises(InventoryError) as error:
        parse_nodes(f"good cpus=1\n# comment\n{line}  # a comment\n", filename="nodes.txt")
    assert str(error.value).startswith("nodes.txt:3: ")
    assert reason in str(error.value)
    assert str(error.value).endswith(f" in {line!r}")


def test_duplicate_node_is_an_error_naming_both_lines():
    message = r"nodes.txt:2: duplicate node 'root@a' \(already on line 1\)"
    with pytest.raises(InventoryError, match=message):
        parse_nodes("a\nroot@a\n")


def test_same_host_on_other_port_is_another_node():
    assert len(parse_nodes("a:22\na:2222\n")) == 2


def test_localhost_alone_is_local_but_not_beside_other_nodes():
    assert parse_nodes("localhost\n")[0].is_local
    assert not parse_nodes("root@localhost\n")[0].is_local
    with pytest.raises(InventoryError, match="only works as the sole node"):
        parse_nodes("10.0.0.1\nlocalhost\n")


def test_empty_and_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(InventoryError, match="no nodes listed"):
        parse_nodes("# nothing\n\n")
    with pytest.raises(InventoryError, match="echo localhost > nodes.txt"):
        load_nodes(str(tmp_path / "nodes.txt"))


def test_select_by_entry_or_host_and_rejects_unknown():
    nodes = parse_nodes("a\nroot@b:2200\nc\n")
    assert select(nodes, "") == nodes
    assert [n.host for n in select(nodes, "c, root@b:2200")] == ["b", "c"]
    assert [n.host for n in select(nodes, "b")] == ["b"]
    with pytest.raises(InventoryError, match="'d' is not in the nodes file"):
        select(nodes, "a,d")


def test_unreadable_nodes_files_say_why(tmp_path):
    path = tmp_path / "nodes.txt"
    path.write_bytes(b"head\nw\xff1\n")
    with pytest.raises(InventoryError, match=r"not UTF-8 text \(byte 0xff at offset 6\): save "
                                             "it as UTF-8"):
        load_nodes(str(path))
    with pytest.raises(InventoryError, match=r"cannot read it \(Is a directory\)"):
        load_nodes(str(tmp_path))


@pytest.mark.parametrize("first, second", [
    ("h", "h:22"),
    ("Head.Example", "head.example"),
    ("head.example.", "head.example"),
    ("alice@h", "bob@h"),
    ("[fd00::1]", "fd00:0::1"),
    ("[FD00:0:0::1]:22", "fd00::1"),
    ("fe80::1%eth0", "[fe80:0::1%eth0]:22"),
])
def test_duplicates_are_found_after_normalising(first, second):
    with pytest.raises(InventoryError, match=r"nodes.txt:2: duplicate node .*already on line 1"):
        parse_nodes(f"{first}\n{second}\n")


def test_other_interface_scope_or_port_is_another_node():
    assert len(parse_nodes("fe80::1%eth0\nfe80::1%eth1\nfe80::1\n")) == 3
    assert len(parse_nodes("h\nh:2222\n")) == 2


@pytest.mark.parametrize("line", [
    "fe80::1%$(id)",
    "[fe80::1%a;b]:22",
    "fe80::1%",
    "fe80::1%averyveryverylongname",
    "fe80::1%eth0%x",
])
def test_ipv6_scope_must_be_an_interface_name(line):
    with pytest.raises(InventoryError, match=r"nodes.txt:1: bad IPv6 (scope|address)"):
        parse_nodes(f"{line}\n")


def test_ipv6_scope_ids_are_kept():
    assert parse_nodes("[fe80::1%eth0]:2222\n")[0] == Node("fe80::1%eth0", port=2222, line=1)


def test_per_node_settings_after_the_address():
    text = """
    10.0.0.10                 cpus=16 gpus=0            # head
    ubuntu@10.0.0.11          cpus=64 gpus=8 resource.ssd=2 resource.fast-disk=0.5
    gw.example.org:2201       ray_ip=10.1.0.21          # behind NAT
    [fe80::1]:22 memory=1.5G object_store_memory=200M ray_ip=fe80::0:1
    plain
    """
    head, big, natted, ipv6, plain = parse_nodes(text)
    assert head.settings == NodeSettings(cpus=16, gpus=0)
    assert big.settings == NodeSettings(cpus=64, gpus=8,
                                        resources=(("fast-disk", 0.5), ("ssd", 2)))
    assert natted.settings == NodeSettings(ray_ip="10.1.0.21")
    assert ipv6.settings == NodeSettings(memory=int(1.5 * 2**30),
                                         object_store_memory=200 * 2**20, ray_ip="fe80::1")
    assert plain.settings == NodeSettings()
    assert [str(node) for node in (big, natted, ipv6)] == [
        "ubuntu@10.0.0.11", "gw.example.org:2201", "[fe80::1]:22"]
    assert len({head, big, natted, ipv6, plain}) == 5  # hashable
    assert [n.host for n in select([head, big, natted], "ubuntu@10.0.0.11,gw.example.org")] \
        == ["10.0.0.11", "gw.example.org"]


def test_a_node_value_wins_over_the_configured_one():
    settings = config.from_mapping({"num_workers": "10", "object_store_memory": "100M"})
    own, other = parse_nodes("a cpus=2 object_store_memory=300M\nb gpus=1\n")
    assert (own.settings.over(settings).cpus,
            own.settings.over(settings).object_store_memory) == (2, 300 * 2**20)
    assert (other.settings.over(settings).cpus, other.settings.over(settings).gpus,
            other.settings.over(settings).object_store_memory) == (10, 1, 100 * 2**20)
    unset = other.settings.over(config.from_mapping({}))
    assert (unset.cpus, unset.object_store_memory) == (None, None)

