"""My project's tasks: ray-tasks' own (install, start, stop, ...) and `train`, which ships
the data to every node, runs the training driver on the cluster once `install` and `start`
have run, and `stop`s the cluster afterwards.

    inv train                       # install, start, train, stop
    inv install start train stop    # the same: each task runs once
"""

import os

from invoke import Collection, task

import ray_tasks
from ray_tasks import hooks

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "points.csv")
# Where the data goes on every node (relative to the SSH user's home).
REMOTE_DATA = "my_project_points.csv"


@task(pre=[hooks.install, hooks.start], post=[hooks.stop],
      help={"epochs": "Passes of gradient descent over the data (default 3)."})
def train(c, epochs=3):
    """Put the data on every node, then run the training driver on the head, through the
    setup-env.sh ray-tasks wrote (so `ray.init()` joins the cluster)."""
    with ray_tasks.nodes_group(c) as nodes:
        nodes.run("hostname")
        nodes.put(DATA, REMOTE_DATA)
    driver = f"python -m train --epochs {int(epochs)} --data ~/{REMOTE_DATA}"
    with ray_tasks.head_connection(c) as head:
        head.run(ray_tasks.in_cluster_env(c, driver))


namespace = ray_tasks.add_to(Collection(train))
