"""NodeFacts is built from a real run of node_state.py's probe, so the probe's JSON and the
dataclass cannot drift apart: every key is a field, every field a key."""

import dataclasses
import json
import subprocess

import pytest

from ray_tasks import ray_commands
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
