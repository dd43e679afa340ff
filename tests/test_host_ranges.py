"""Folding host lists into ranges (host_ranges.fold), as dshbak -c and nodeset -f do."""

import pytest

from ray_tasks.host_ranges import fold


@pytest.mark.parametrize("names, folded", [
    ([f"10.0.0.{i}" for i in range(1, 33)], "10.0.0.[1-32]"),
    (["node1", "node2", "node3", "node7"], "node[1-3,7]"),
    (["n3", "n1", "n2"], "n[1-3]"),
    (["n9", "n10", "n11"], "n[9-11]"),
    ([f"n{i:02d}" for i in range(1, 13)], "n[01-12]"),
    (["n09", "n010"], "n[09,010]"),
    (["head", "n1", "n2"], "head,n[1-2]"),
    (["localhost"], "localhost"),
    (["10.0.0.5"], "10.0.0.5"),
    (["root@10.0.0.1:2222", "root@10.0.0.2:2222", "root@10.0.0.4:2222"],
     "root@10.0.0.[1-2,4]:2222"),
    (["10.0.0.1:2201", "10.0.0.1:2202"], "10.0.0.1:2201,10.0.0.1:2202"),
    (["[fd00::13]:22", "[fd00::14]:22"], "[fd00::[13-14]]:22"),
    (["gpu2-rack3", "gpu2-rack4", "gpu3-rack1"], "gpu2-rack[3-4],gpu3-rack1"),
    (["a1", "b1", "a2"], "a[1-2],b1"),
])
def test_fold(names, folded):
    assert fold(names) == folded
