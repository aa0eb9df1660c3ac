"""The job store's rules on real SQLite and PostgreSQL: leases, takeover, retries with backoff, the global cap,
failure records and their CLI reports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from swapface.cli.main import main as cli
from swapface.jobs.store import JobStore, NewJob, make_engine



@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path) -> Iterator[JobStore]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    yield JobStore(engine, max_attempts=3, retry_backoff_s=1.0)
    engine.dispose()


def _new(store: JobStore, owner: str = "k1", **kw) -> str:
    job, created = store.create(NewJob(owner=owner, kind="image", spec={"sources": [], "target": "t", "output": "o",
                                                                        "work_dir": "w"}, **kw))
    assert created
    return job.id


def test_claim_lease_heartbeat_and_takeover(store):
    job_id = _new(store)
    job = store.claim("w1", lease_seconds=0.5)
    assert job is not None and job.id == job_id and job.status == "running" and job.attempts == 1
    assert store.claim("w2", lease_seconds=0.5) is None  # held
    assert store.heartbeat(job_id, "w1", lease_seconds=0.5, frames_done=5, frames_total=10).held
    time.sleep(0.7)  # w1 stops beating: its lease runs out
    taken = store.claim("w2", lease_seconds=5)
    assert taken is not None and taken.id == job_id and taken.attempts == 2 and taken.frames_done == 5
    assert not store.heartbeat(job_id, "w1", lease_seconds=5).held  # w1 learns it lost the job
    assert not store.finish(job_id, "w1", "succeeded")
    assert store.finish(job_id, "w2", "succeeded", frames=10)
    assert store.get(job_id).status == "succeeded"
    assert [f["code"] for f in store.failure_rows(0)] == ["worker_lost"]


def test_failed_attempts_retry_with_backoff_then_fail(store):
    job_id = _new(store)
    delays = []
    for attempt in range(1, 4):
        deadline = time.monotonic() + 10
        while (job := store.claim("w", lease_seconds=30)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert job.attempts == attempt
        delays.append(job.run_after - job.created_at)
        state = store.fail_attempt(job_id, "w", "encoder_crash", "the encoder stopped", retryable=True)
        assert state == ("failed" if attempt == 3 else "queued")
        if state == "queued":
            assert store.claim("w", lease_seconds=30) is None  # not before its backoff
    final = store.get(job_id)
    assert final.status == "failed" and final.error_code == "encoder_crash"
    assert delays[2] - delays[1] > delays[1] - delays[0] > 0  # the wait doubles
    rows = list(store.failure_rows(0))
    assert [r["retried"] for r in rows] == [True, True, False]
    summary = store.failure_summary(0)
    assert summary[0]["code"] == "encoder_crash" and summary[0]["count"] == 3 and summary[0]["jobs"] == 1


def test_input_errors_fail_at_once_and_cancel_stops_retries(store):
    bad = _new(store)
    store.claim("w", lease_seconds=30)
    assert store.fail_attempt(bad, "w", "no_face", "no face in the source", retryable=False) == "failed"
    running = _new(store)
    store.claim("w", lease_seconds=30)
    store.request_cancel(running)
    assert store.heartbeat(running, "w", lease_seconds=30).cancel_requested
    assert store.fail_attempt(running, "w", "io", "disk", retryable=True) == "cancelled"
    queued = _new(store)
    assert store.request_cancel(queued).status == "cancelled"
    assert store.claim("w", lease_seconds=30) is None


def test_global_cap_on_running_jobs(store):
    for _ in range(3):
        _new(store)
    assert store.claim("a", lease_seconds=30, max_running=2) is not None
    assert store.claim("b", lease_seconds=30, max_running=2) is not None
    assert store.claim("c", lease_seconds=30, max_running=2) is None
    assert store.counts_by_state()["queued"] == 1


def test_owner_scoping_usage_and_idempotency(store):
    a = _new(store, owner="alice", idempotency_key="k", request_hash="h1")
    b = _new(store, owner="bob", idempotency_key="k", request_hash="h1")  # keys are per owner
    assert a != b
    again, created = store.create(NewJob(owner="alice", kind="image", spec={}, idempotency_key="k", request_hash="h1"))
    assert not created and again.id == a
    assert store.get(a, owner="bob") is None and store.get(a, owner="alice") is not None
    store.claim("w", lease_seconds=30)
    assert store.count_active("alice") + store.count_active("bob") == 2
    with store.engine.begin() as conn:
        from swapface.jobs.store import jobs

        conn.execute(jobs.update().values(frames=100, compute_seconds=4.0))
    assert store.usage("alice", 0, time.time() + 1) == {"jobs": 1, "frames": 100, "compute_seconds": 4.0,
                                                         "gpu_seconds": 0.0, "live_sessions": 0, "live_frames": 0,
                                                         "live_compute_seconds": 0.0}


def test_failures_command_summarises_and_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWAPFACE_DATA_DIR", str(tmp_path / "data"))
    from swapface.config import load_settings

    store = JobStore(make_engine(load_settings().resolved_database_url()), max_attempts=1)
    for code in ("no_face", "no_face", "timeout"):
        job_id = _new(store)
        store.claim("w", lease_seconds=30)
        store.fail_attempt(job_id, "w", code, f"{code} happened", retryable=False)
    assert cli(["jobs", "failures", "--hours", "1"]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith(("no_face", "timeout"))]
    assert lines[0].split()[:3] == ["no_face", "2", "2"] and lines[1].split()[:3] == ["timeout", "1", "1"]
    assert cli(["jobs", "failures", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["code"] for r in rows] == ["no_face", "no_face", "timeout"]
    assert set(rows[0]) >= {"job_id", "owner", "attempt", "code", "message", "retried", "at"}
    assert cli(["jobs", "failures", "--format", "xml"]) == 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_database_made_by_an_older_version_gains_the_new_columns(db_url):
    """A jobs table without ``lost_frames`` and ``providers`` (as an older release made it, with a job in it) is
    brought up to date when the store opens it: the old job reads with defaults, the new columns take values."""
    import sqlalchemy as sa

    from swapface.jobs import store as store_module

    old = sa.MetaData()
    sa.Table("jobs", old, *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                             for c in store_module.jobs.columns if c.name not in ("lost_frames", "providers")])
    engine = make_engine(db_url)
    try:
        old.create_all(engine)
        now = time.time()
        with engine.begin() as conn:
            conn.execute(old.tables["jobs"].insert().values(
                id="old-job", owner="k1", status="queued", kind="video", spec=json.dumps({"sources": [], "target": "t"}),
                frames_done=0, frames_total=0, chunks_done=0, chunks_total=0, chunks_reused=0, attempts=0,
                max_attempts=3, created_at=now, updated_at=now, run_after=now, cancel_requested=False, frames=0,
                compute_seconds=0.0, gpu_seconds=0.0))
        store = JobStore(engine, max_attempts=3)
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("jobs")}
        assert {"lost_frames", "providers"} <= set(columns)
        assert columns["lost_frames"]["nullable"] is False  # added NOT NULL with its default
        old_job = store.get("old-job")
        assert old_job is not None and old_job.public()["lost_frames"] == 0
        assert old_job.public()["usage"]["providers"] == []
        JobStore(engine)  # opening it again changes nothing
        claimed = store.claim("w1", lease_seconds=30)
        assert claimed is not None and claimed.id == "old-job"
        store.add_usage("old-job", compute_seconds=1.5, gpu_seconds=0.0, providers=["cpu"])
        assert store.fail_attempt("old-job", "w1", "damaged_video", "damaged", retryable=False, lost_frames=45) == "failed"
        done = store.get("old-job").public()
        assert done["lost_frames"] == 45 and done["usage"]["providers"] == ["cpu"], done
        assert done["error"]["code"] == "damaged_video"
    finally:
        engine.dispose()
