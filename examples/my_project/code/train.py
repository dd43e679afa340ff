"""The training driver, run on the head after `source setup-env.sh`: each epoch's gradient is
summed from shards computed as Ray tasks spread over the cluster's nodes, each reading the
data file that `inv train` put on every node."""

import argparse
import os
import socket

import ray

import model

SHARDS = 4
LEARNING_RATE = 0.5


@ray.remote(scheduling_strategy="SPREAD")
def shard_gradient(path, shard, w, b):
    """The gradient over one shard of the node's own copy of the data, and the node's name."""
    points = model.load(os.path.expanduser(path))[shard::SHARDS]
    return model.gradient(points, w, b), socket.gethostname()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", required=True, help="the data file on every node")
    args = parser.parse_args()
    ray.init(logging_level="ERROR", log_to_driver=False)
    nodes = [node for node in ray.nodes() if node["Alive"]]
    points = model.load(os.path.expanduser(args.data))
    w = b = 0.0
    print(f"epoch 0: loss {model.loss(points, w, b):.4f}")
    for epoch in range(1, args.epochs + 1):
        answers = ray.get([shard_gradient.remote(args.data, shard, w, b)
                           for shard in range(SHARDS)])
        w -= LEARNING_RATE * sum(grad[0] for grad, _ in answers) / len(points)
        b -= LEARNING_RATE * sum(grad[1] for grad, _ in answers) / len(points)
        print(f"epoch {epoch}: loss {model.loss(points, w, b):.4f}")
    cpus = ray.cluster_resources().get("CPU", 0)
    print(f"trained on a cluster of {len(nodes)} nodes, {cpus:g} CPUs: w={w:.3f} b={b:.3f}")


if __name__ == "__main__":
    main()
