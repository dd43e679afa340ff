"""Output that reads at any N, over the fake transport (tests/fake_hosts.py): identical
output folded into host ranges, the one-line summary, the table of the failed hosts."""

import re

import test_orchestration
from test_orchestration import three

fake, inv = test_orchestration.fake, test_orchestration.inv  # the fixtures, shared

MANY = [f"10.8.0.{number}" for number in range(1, 33)]


def many(fake, ray="2.60.0"):
    """32 fake nodes, 10.8.0.1 the head."""
    return [fake.add(address, ray) for address in MANY]


def test_exec_true_over_32_hosts_prints_one_group(fake, inv):
    many(fake)
    ran = inv("exec", "true")
    assert ran.code == 0, ran.out + ran.err
    assert ran.out.splitlines() == ["[10.8.0.[1-32]] (no output)",
                                    ran.out.splitlines()[-1]]
    assert re.fullmatch(r"exec: 32 nodes ok in \d+\.\d s", ran.out.splitlines()[-1])


def test_exec_prints_each_distinct_output_once_with_its_hosts(fake, inv):
    nodes = many(fake)
    for node in nodes:
        node.on("hostname", (0, f"name-{node.address}\n", ""))
        node.on("uname -r", (0, "6.1.0-18-amd64\n" if node.address != MANY[4]
                             else "6.12.0\n", ""))
    names = inv("exec", "hostname")
    assert names.code == 0, names.out + names.err
    assert [line for line in names.out.splitlines() if "| name-" in line] == [
        f"[{address}] | name-{address}" for address in MANY]
    kernels = inv("exec", "uname -r")
    assert kernels.out.splitlines()[:2] == ["[10.8.0.[1-4,6-32]] | 6.1.0-18-amd64",
                                            "[10.8.0.5] | 6.12.0"]


def test_exec_failures_are_named_and_their_output_grouped(fake, inv):
    nodes = many(fake)
    for node in nodes[1:3]:
        node.on("false", (1, "", "no luck\n"))
    ran = inv("exec", "false")
    assert ran.code == 1
    assert "[10.8.0.2] FAILED: exit 1" in ran.out and "[10.8.0.3] FAILED: exit 1" in ran.out
    assert "[10.8.0.[2-3]] | no luck" in ran.out
    assert "[10.8.0.[1,4-32]] (no output)" in ran.out
    table = ran.out.split("exec: summary\n")[1]
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["10.8.0.2", "10.8.0.3"]
    assert "exec: 2 of 32 nodes FAILED, 30 ok, in " in table


def test_start_over_32_hosts_says_each_step_once_and_ends_in_one_line(fake, inv):
    many(fake)
    ran = inv("start")
    assert ran.code == 0, ran.out + ran.err
    assert "[10.8.0.[2-32]] joined 10.8.0.1:6379" in ran.out.splitlines()
    assert "[10.8.0.1] head started" in ran.out.splitlines()
    assert re.search(r"^10\.8\.0\.\[1-32\]\s+10\.8\.0\.\[1-32\]\s+2\s+0\s+4\.0 GiB\s",
                     ran.out, re.M), "the nodes' identical resources are not one row"
    assert "summary" not in ran.out
    assert re.search(r"^start: 32 nodes ok in \d+\.\d s$", ran.out, re.M)
    assert len(ran.out.splitlines()) < 60, ran.out


def test_verbose_lists_every_host_in_the_summary(fake, inv):
    three(fake)
    ran = inv("start", "--verbose")
    assert ran.code == 0, ran.out + ran.err
    table = ran.out.split("start: summary\n")[1]
    assert [line.split()[:2] for line in table.splitlines()[2:5]] == [
        ["10.9.0.1", "ok"], ["10.9.0.2", "ok"], ["10.9.0.3", "ok"]]
    assert re.search(r"^start: 3 nodes ok in \d+\.\d s$", table, re.M)
