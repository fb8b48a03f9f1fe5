"""The worker's heartbeat share of its job claims: finished jobs leave the registry, and the leases of running
jobs are renewed every third of their TTL (whoever is or is not listening to the jobs)."""

from types import SimpleNamespace
from typing import Any

from services.worker.claims import REGISTRY_TTL, JobClaims
from shared import keys


class _Recorder:
    """Stands for a Redis client and for a pipeline: records the commands it is given."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.connection_pool = SimpleNamespace(connection_kwargs={})

    def register_script(self, script: str) -> object:
        return object()

    def __getattr__(self, name: str) -> Any:
        def command(*args: Any, **kwargs: Any) -> None:
            self.commands.append((name, args, kwargs))

        return command


def test_a_beat_drops_finished_jobs_and_renews_running_leases_every_third_of_their_ttl() -> None:
    claims = JobClaims(_Recorder(), "w1", lease_ttl=3.0)  # type: ignore[arg-type]
    claims._leases = {"a": keys.lease("user:x"), "b": keys.lease("user:x"), "c": keys.lease("user:y")}
    claims._renewed -= 1.5  # more than a third of 3 s ago
    claims.finished("c")
    pipe = _Recorder()
    claims.beat(pipe)  # type: ignore[arg-type]
    names = [name for name, _, _ in pipe.commands]
    assert names == ["hdel", "expire", "zadd", "pexpire"]
    assert pipe.commands[0][1] == (keys.worker_jobs("w1"), "c")
    assert pipe.commands[1][1] == (keys.worker_jobs("w1"), REGISTRY_TTL)
    lease, members = pipe.commands[2][1]
    assert lease == keys.lease("user:x") and set(members) == {"a", "b"}
    assert pipe.commands[2][2] == {"xx": True}  # a lease given up by the API stays given up
    again = _Recorder()
    claims.beat(again)  # type: ignore[arg-type]
    assert [name for name, _, _ in again.commands] == ["expire"]  # renewed a moment ago: not yet again
