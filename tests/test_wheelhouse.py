"""The wheelhouse downloads once per platform of the nodes (Python, machine, glibc) and
delivers each download only to the nodes of its platform."""

from types import SimpleNamespace

from ray_tasks import installing, peer_wheels, wheelhouse


def host(name, python="3.11.2", machine="x86_64", glibc="2.36"):
    return SimpleNamespace(node=name, facts=SimpleNamespace(python=python, machine=machine,
                                                            glibc=glibc))


class FakeRunner:
    """Runs each step at once; records failures."""

    def __init__(self):
        self.failed = {}

    def each(self, step, hosts, what=None):
        for each in hosts:
            step(each)
        return SimpleNamespace(succeeded=[each for each in hosts
                                          if each.node not in self.failed])

    def fail(self, failing, message, output=""):
        self.failed[failing.node] = message


def test_hosts_are_grouped_by_python_minor_machine_and_glibc():
    a, b = host("a"), host("b", python="3.11.9")
    arm = host("arm", machine="aarch64")
    old = host("old", glibc="2.31")
    musl = host("musl", glibc="")
    groups = wheelhouse.by_platform([a, arm, b, old, musl])
    assert [[each.node for each in group] for _, group in groups] == \
        [["a", "b"], ["arm"], ["old"], ["musl"]]
    assert [facts.machine for facts, _ in groups] == ["x86_64", "aarch64", "x86_64", "x86_64"]


def test_cache_folder_is_the_platform():
    settings = SimpleNamespace(wheel_cache="/cache")
    assert wheelhouse.cache_dir(settings, host("a").facts, "ray==2.60.0") == \
        "/cache/ray==2.60.0-py3.11-x86_64-glibc2.36"
    assert wheelhouse.cache_dir(settings, host("m", glibc="").facts, "r") == \
        "/cache/r-py3.11-x86_64-glibcnone"


def test_each_node_gets_the_wheels_of_its_own_platform(monkeypatch, capsys):
    downloads, pushes = [], {}

    def download(settings, facts, requirement, name):
        if facts.machine == "riscv64":
            raise installing.StepError("could not download the wheels of ray on this machine")
        downloads.append(facts.machine)
        return f"/cache/{facts.machine}", False

    class Delivery:
        def __init__(self, settings, folders, done):
            self.folders = folders

        def distribute(self, runner, hosts):
            pushes.update((target.node, self.folders[0]) for target in hosts)
            return hosts

    monkeypatch.setattr(wheelhouse, "download", download)
    monkeypatch.setattr(peer_wheels, "Relays", Delivery)
    monkeypatch.setattr(wheelhouse, "wheel_bytes", lambda folders: 0)
    hosts = [host("head"), host("arm1", machine="aarch64"), host("x2"),
             host("arm2", machine="aarch64"), host("rv", machine="riscv64")]
    runner = FakeRunner()
    pushed = installing.push_wheels(runner, None, hosts, ["ray==2.60.0"], "ray==2.60.0")
    assert downloads == ["x86_64", "aarch64"], "one download per platform"
    assert pushes == {"head": "/cache/x86_64", "x2": "/cache/x86_64",
                      "arm1": "/cache/aarch64", "arm2": "/cache/aarch64"}
    assert [each.node for each in pushed] == ["head", "arm1", "x2", "arm2"]
    assert list(runner.failed) == ["rv"]
