"""The example run definitions of the guide load, validate and run to completion.

``docs/examples/orchestrations/definitions/`` is the ``definitions_dir`` of the
example configuration; each of its definitions runs on orchestratord with every
step succeeding (the steps of ``flaky.yaml`` each after a failed attempt, each
checkpoint decided ``continue``, ``digest`` fanning out to ``section`` and gathering
their outputs), and ``broken-cycle.yaml`` is refused naming its field.

Spec: ORCH-0305, ORCH-0315, ORCH-0329, ORCH-0332, ORCH-0367, ORCH-0490.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.client import OrchClient
from orchestrator.config import load_config
from orchestrator.runs import DefinitionError, DefinitionLimits, validate_definition
from orchestrator.server import ServerThread
from tests.support import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "orchestrations"


@pytest.mark.req("ORCH-0315", "ORCH-0329", "ORCH-0332", "ORCH-0367", "ORCH-0490")
def test_every_example_definition_runs_to_completion(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "orchq.yaml", database=str(tmp_path / "orchq.db"))
    files = sorted((EXAMPLES / "definitions").iterdir())
    assert files, "the example folder holds definitions"
    with ServerThread(config) as server, OrchClient(server.url) as client:
        registered = {d.name for d in client.list_definitions()}
        session = client.create_session().session_id
        for file in files:
            document = yaml.safe_load(file.read_text(encoding="utf-8"))
            assert document["name"] in registered
            inputs = {
                name: {"string": "queues", "integer": 2, "boolean": True, "list": ["a", "b", "c"]}[
                    spec["type"]
                ]
                for name, spec in document.get("inputs", {}).items()
            }
            run = client.create_run(session, document["name"], document["version"], inputs=inputs)
            while True:
                wait_until(lambda run=run: client.get_run(run.run_id).state != "running")
                done = client.get_run(run.run_id)
                if done.state != "awaiting_approval":
                    break
                for waiting in client.list_approvals(run_id=run.run_id, state="pending").approvals:
                    client.decide_checkpoint(run.run_id, waiting.checkpoint_id, "continue", "docs")
            assert done.state == "completed", f"{file.name}: {done}"
            assert all(step.output for step in done.steps)
            if document["name"] == "flaky":
                assert all(len(step.attempts) > 1 for step in done.steps), (
                    f"the flaky example shows no retry: {done}"
                )
            for step in done.steps:  # a fan-out gathers its children's outputs in item order
                if step.children:
                    outputs = [client.get_run(c).steps[-1].output for c in step.children]
                    assert step.output == json.dumps(outputs, separators=(",", ":"))


@pytest.mark.req("ORCH-0305")
def test_the_broken_example_is_refused_naming_its_field() -> None:
    document = yaml.safe_load((EXAMPLES / "broken-cycle.yaml").read_text(encoding="utf-8"))
    with pytest.raises(DefinitionError) as refused:
        validate_definition(document, DefinitionLimits())
    assert refused.value.path == "steps[0].depends_on"
