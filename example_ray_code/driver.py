"""An example driver: run it on the head after `source <installation_directory>/setup-env.sh`.

    python ~/ray/.ray-tasks/worker_code/driver.py
"""

import ray

import greetings


@ray.remote
def greet(name):
    return greetings.hello(name)


def main():
    ray.init()
    nodes = [node for node in ray.nodes() if node["Alive"]]
    print(f"{len(nodes)} nodes, {ray.cluster_resources().get('CPU', 0):g} CPUs")
    for line in ray.get([greet.remote(f"task {i}") for i in range(4)]):
        print(line)


if __name__ == "__main__":
    main()
