"""The port plan: every port ray-tasks gives Ray, derived from the cluster's port."""

import pytest

from ray_tasks import config, ray_ports


def test_default_cluster_keeps_ray_s_familiar_ports():
    plan = ray_ports.plan(6379)
    assert plan.fixed["GCS"] == 6379
    assert plan.fixed["dashboard"] == 8265
    assert plan.workers == (6479, 8178)


def test_every_port_of_a_plan_is_distinct_and_inside_its_block():
    plan = ray_ports.plan(6379)
    first, last = plan.workers
    fixed = list(plan.fixed.values())
    assert len(set(fixed)) == len(fixed)
    assert not set(fixed) & set(range(first, last + 1))
    assert all(6379 <= port < 6379 + ray_ports.BLOCK for port in plan.all_ports())


@pytest.mark.parametrize("other", [6379 + ray_ports.BLOCK, 6379 - ray_ports.BLOCK, 20000])
def test_clusters_a_block_apart_share_no_port(other):
    assert not ray_ports.plan(6379).all_ports() & ray_ports.plan(other).all_ports()
    assert ray_ports.overlap(6379, other) is None


@pytest.mark.parametrize("other, shared", [(6479, "6479-8265"), (6380, "6380-8178"),
                                           (8000, "8000-8265")])
def test_overlapping_clusters_are_named_in_one_line(other, shared):
    problem = ray_ports.overlap(6379, other)
    assert problem.startswith(f"ports {shared} would be shared by this cluster (port 6379) "
                              f"and the one at port {other}")
    assert "\n" not in problem and f"at least {ray_ports.BLOCK} apart" in problem


def test_worker_nodes_get_every_port_but_the_gcs_one():
    head = ray_ports.plan(8379).start_args(head=True)
    worker = ray_ports.plan(8379).start_args(head=False)
    assert "--port=8379" in head and "--dashboard-port=10265" in head
    assert worker == [arg for arg in head if arg != "--port=8379"]
    assert "--ray-client-server-port=8382" in worker  # not Ray's 10001, in the worker range
    assert "--min-worker-port=8479" in worker and "--node-manager-port=8380" in worker


def test_a_port_whose_block_does_not_fit_is_refused():
    assert config.from_mapping({"port": ray_ports.HIGHEST_PORT}).port == ray_ports.HIGHEST_PORT
    with pytest.raises(config.ConfigError, match="port: must be 1-63536"):
        config.from_mapping({"port": ray_ports.HIGHEST_PORT + 1})
