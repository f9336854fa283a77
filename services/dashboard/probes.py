"""Is the dashboard alive, and is it ready? Read from the Faust app, served by its web views.

The dashboard is not on the batch runner, so the heartbeats behind ``shared.health`` never
beat for it; its probes look at the Faust app instead:

- alive: the app has started and has not crashed or begun to stop, and every agent is
  running with at least one actor whose task has not ended. Faust's supervisor restarts
  an actor that raised, so a crash of one is brief; a crash of the app is not, and the
  service exits on it (``service.until_stopped_or_crashed``) — the probe says so first.
- ready: alive, its consumer group joined and its tables recovered from their changelogs:
  until then its page would show counts that are about to jump.

Each returns ``(ok, detail)``, ``detail`` being JSON-able with a ``reason`` when not ok.
"""

from __future__ import annotations

from typing import Any

import faust

from shared.health import HEALTH

Verdict = tuple[bool, dict[str, Any]]


def liveness(app: faust.App) -> Verdict:
    if app.crashed:
        return False, {"reason": f"the Faust app crashed: {app.crash_reason!r}"}
    if app.should_stop:
        return False, {"reason": "stopping"}
    if not app.started:
        return False, {"reason": "starting"}
    agents = {agent.name: agent for agent in app.agents.values()}
    down = {name: why for name, agent in agents.items() if (why := _agent_down(agent))}
    if down:
        return False, {"reason": "; ".join(f"{name}: {why}" for name, why in sorted(down.items())), "agents": down}
    return True, {"agents": sorted(agents)}


def _agent_down(agent: faust.types.AgentT) -> str | None:
    if agent.crashed:
        return f"crashed: {agent.crash_reason!r}"
    if not agent.started:
        return "not started"
    # no public accessor (faust's AgentT does not declare it); the supervisor replaces a crashed one
    actors = list(agent._actors)  # type: ignore[attr-defined]
    if not actors:
        return "no actor"
    if all(actor.actor_task is not None and actor.actor_task.done() for actor in actors):
        return "every actor's task has ended"
    return None


def readiness(app: faust.App) -> Verdict:
    alive, detail = liveness(app)
    if not alive:
        return False, detail
    if app.rebalancing:
        return False, {"reason": "rebalancing: not in the consumer group yet"}
    # the table manager's recovery is not in faust's TableManagerT interface
    if app.in_recovery or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return False, {"reason": "recovering its tables from their changelogs"}
    actives = sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives())
    return True, {"assigned": actives}


class HealthReport:
    """Hands the verdicts to ``shared.health``, so the metrics port tells the truth as well.

    ``fraudstream-service`` serves ``/healthz``, ``/readyz`` and the ``fraudstream_healthy`` /
    ``fraudstream_ready`` gauges on the metrics port for every service, from heartbeats and
    checks the batch runner registers. The dashboard registers its own: ``update`` runs in the
    app's event loop (the Faust objects are read there only), beats while the app is alive
    and keeps the last readiness for the check, which the health server calls from its
    thread. A blocked loop stops the beats, so ``/healthz`` there turns 503 after
    ``liveness_stale_s``, as for the other services.
    """

    def __init__(self, app: faust.App, service: str, stale_s: float):
        self.app, self.service = app, service
        self.ready: Verdict = (False, {"reason": "starting"})
        HEALTH.stale_s = stale_s
        HEALTH.add_check(service, self.check)

    def update(self) -> None:
        if liveness(self.app)[0]:
            HEALTH.beat(self.service)
        self.ready = readiness(self.app)

    def check(self) -> bool | str:
        ok, detail = self.ready
        return True if ok else detail["reason"]

    def close(self) -> None:
        HEALTH.remove_check(self.service)
        HEALTH.forget(self.service)
