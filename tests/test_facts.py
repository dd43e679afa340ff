"""NodeFacts is built from a real run of node_state.py's probe, so the probe's JSON and the
dataclass cannot drift apart: every key is a field, every field a key. cluster.json keeps its
format through ClusterRecord."""

import dataclasses
import json
import subprocess

import pytest

from ray_tasks import config, ray_commands
from ray_tasks.cluster_record import ClusterRecord
from ray_tasks.facts import NodeFacts, NodeState

FIELDS = {field.name for field in dataclasses.fields(NodeFacts)}


def probe_answer(home):
    """The JSON object node_state.py's probe prints for an installation in ``home``."""
    command = ray_commands.probe("python3", str(home), 6390, "localhost")
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("claimed", [False, True])
def test_the_probe_answers_exactly_the_fields_of_node_facts(tmp_path, claimed):
    home = tmp_path / "ray"
    home.mkdir()
    if claimed:
        subprocess.run(["sh", "-c", ray_commands.claim(str(home))], check=True)
    answer = probe_answer(home)
    assert set(answer) == FIELDS
    facts = NodeFacts.from_probe(answer)
    assert (facts.home, facts.state_dir) == (str(home), "ours" if claimed else "absent")
    assert (facts.venvs, facts.codes, facts.busy) == ((), (), ())
    assert not facts.raylet and facts.cluster is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.gcs = True


def test_a_probe_answer_with_a_key_more_or_less_is_refused(tmp_path):
    answer = probe_answer(tmp_path)
    with pytest.raises(TypeError):
        NodeFacts.from_probe(dict(answer, unknown=1))
    del answer["shm_free"]
    with pytest.raises(TypeError):
        NodeFacts.from_probe(answer)


def test_the_state_starts_from_the_facts_and_changes_apart_from_them(tmp_path):
    facts = NodeFacts.from_probe(probe_answer(tmp_path))
    state = NodeState.from_facts(facts)
    assert (state.gcs, state.raylet, state.state_dir) == (facts.gcs, facts.raylet,
                                                          facts.state_dir)
    assert state.new_venv is None and state.previous_venv is None
    state.raylet = True
    state.venvs.append("ray-2.60.0-py3.11.2")
    assert not facts.raylet and facts.venvs == ()


def test_cluster_json_keeps_its_format_and_gives_back_the_settings():
    settings = config.from_mapping({"port": "6390", "num_workers": "3", "start_args": "--x 1"})
    record = ClusterRecord.of(settings, "10.0.0.1:6390")
    assert record.to_json() == json.dumps({
        "head": "10.0.0.1:6390", "port": 6390, "num_workers": 3, "object_store_memory": "",
        "start_args": "--x 1"}, indent=2)
    assert ClusterRecord.from_json(json.loads(record.to_json())) == record
    again = record.settings(config.from_mapping({}))
    assert (again.port, again.num_workers, again.start_args) == (6390, 3, "--x 1")
    older = ClusterRecord.from_json({"head": "10.0.0.1:7000", "num_workers": 2})
    assert (older.settings(settings).num_workers, older.settings(settings).port) == (2, 6390)
    assert ClusterRecord.from_json(None) is None


def test_a_cluster_where_ray_counted_the_cpus_restarts_so():
    detected = ClusterRecord.of(config.from_mapping({}), "10.0.0.1:6379")
    assert detected.num_workers == ""
    again = ClusterRecord.from_json(json.loads(detected.to_json()))
    assert again.settings(config.from_mapping({"num_workers": "4"})).num_workers is None


def test_the_probe_reads_cluster_json_as_a_cluster_record(tmp_path):
    home = tmp_path / "ray"
    home.mkdir()
    subprocess.run(["sh", "-c", ray_commands.claim(str(home))], check=True)
    record = ClusterRecord(head="10.0.0.1:6390", port=6390, num_workers=2)
    (home / ".ray-tasks" / "cluster.json").write_text(record.to_json())
    assert ray_commands.cluster_file(str(home)) == str(home / ".ray-tasks" / "cluster.json")
    assert NodeFacts.from_probe(probe_answer(home)).cluster == record
