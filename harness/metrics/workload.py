"""The small workload the metrics contract is checked after, through the public client only.

Sessions, tasks of both priorities streamed to their end, and refused requests
(an out-of-range parameter, an unknown session), each carrying values that are
unique to this run (prompts, seeds, metadata), so that a label fed by request
input shows up as a value the check can recognise. It runs against any
OrchQueue v1 server; on a live server shared with other clients the token
count of ORCH-0135 is only exact while nobody else streams.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.client import OrchClient

__all__ = ["WorkloadResult", "run_workload"]


@dataclass
class WorkloadResult:
    tokens_streamed: int = 0
    """``token`` events the client received, each counted once."""
    task_ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Error kinds of the refused requests."""
    request_inputs: set[str] = field(default_factory=set)
    """Every value sent or handed out per request: no label may carry one (ORCH-0133)."""


def run_workload(
    client: OrchClient,
    *,
    sessions: int = 2,
    tasks_per_session: int = 2,
    max_tokens: int = 6,
    pool: str = "default",
) -> WorkloadResult:
    """Run the workload and return what it sent and streamed."""
    from orchestrator.client import OrchError

    run = secrets.token_hex(4)
    result = WorkloadResult()
    for s in range(sessions):
        marker = f"tenant-{run}-{s}"
        created = client.create_session(metadata={"tenant": marker})
        result.request_inputs.update({created.session_id, marker})
        for t in range(tasks_per_session):
            prompt = f"metrics workload {run} session {s} task {t}"
            seed = int(run, 16) * 100 + s * 10 + t
            admitted = client.submit_task(
                created.session_id,
                prompt,
                pool=pool,
                priority="interactive" if t % 2 == 0 else "batch",
                max_tokens=max_tokens,
                seed=seed,
            )
            result.task_ids.append(admitted.task_id)
            result.request_inputs.update({admitted.task_id, prompt, str(seed)})
            stream = client.collect_stream(admitted.task_id)
            result.tokens_streamed += len(stream.tokens)
    session_id = client.create_session().session_id
    result.request_inputs.add(session_id)
    refused_prompt = f"refused {run}: max_tokens out of range"
    result.request_inputs.add(refused_prompt)
    unknown = f"sess_unknown{run}"
    result.request_inputs.add(unknown)
    # max_tokens out of range (ORCH-0002), then a session that does not exist
    for target_session, tokens in ((session_id, 0), (unknown, max_tokens)):
        try:
            client.submit_task(target_session, refused_prompt, pool=pool, max_tokens=tokens)
        except OrchError as exc:
            result.refused.append(exc.kind)
        else:
            raise AssertionError(f"the server admitted a request it must refuse ({run})")
    return result
