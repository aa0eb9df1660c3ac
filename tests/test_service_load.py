"""Load on the real service (loopback only, bounded): many concurrent submissions each get their own job,
the paginated list shows every job exactly once, Idempotency-Keys hold under concurrent repeats, and
concurrent workers' claims take every queued job exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from service_fixtures import LiveService, jpeg_bytes, live_service
from swapface.jobs.store import STATES, JobRecord, JobStore, NewJob, make_engine
from swapface.service.auth import LOCAL_CALLER
from swapface.storage.keys import KEYS_DIR

pytestmark = pytest.mark.slow

CLIENTS = 20
SUBMISSIONS = 200
IDEMPOTENCY_KEYS = 50
REPEATS = 4
KEK = "k1:" + base64.b64encode(bytes(range(1, 33))).decode()


@pytest.fixture(scope="module")
def pictures(astronaut, driver) -> tuple[bytes, bytes]:
    """Small real JPEGs (a few KB): the astronaut as source, the driver as target."""
    return jpeg_bytes(np.ascontiguousarray(astronaut[::4, ::4])), jpeg_bytes(np.ascontiguousarray(driver[::4, ::4]))


def concurrently(svc: LiveService, calls: list[Callable[[httpx.Client], Any]], clients: int = CLIENTS) -> list[Any]:
    """Run ``calls`` from ``clients`` threads, each with its own HTTP connection; results in call order."""
    local = threading.local()
    opened: list[httpx.Client] = []
    lock = threading.Lock()

    def run(call: Callable[[httpx.Client], Any]) -> Any:
        if not hasattr(local, "client"):
            local.client = svc.client(timeout=60)
            with lock:
                opened.append(local.client)
        return call(local.client)

    try:
        with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
            futures = [pool.submit(run, call) for call in calls]
            return [f.result(timeout=120) for f in futures]
    finally:
        for client in opened:
            client.close()


def every_listed_job(http: httpx.Client, limit: int = 50, max_pages: int = 50) -> list[list[dict]]:
    """Walk ``GET /v1/jobs`` with its cursor; the pages as returned."""
    pages, cursor = [], None
    for _ in range(max_pages):
        answer = http.get("/v1/jobs", params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["jobs"])
        cursor = body["next_cursor"]
        if not cursor:
            return pages
    raise AssertionError(f"the listing did not end within {max_pages} pages")


def job_folders(svc: LiveService) -> dict[str, set[str]]:
    """Job id → the files stored under its folder (empty folders count too: they would be leaks)."""
    root = Path(urlparse(svc.settings.resolved_storage_url()).path)
    return {d.name: {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
            for d in root.iterdir() if d.is_dir() and d.name != KEYS_DIR}


def assert_store_agrees(svc: LiveService, http: httpx.Client, ids: set[str]) -> None:
    store = svc.runtime.store
    assert store.counts_by_state() == {state: (len(ids) if state == "queued" else 0) for state in STATES}
    assert {j.id for j in store.list(LOCAL_CALLER.id, limit=10 * len(ids))} == ids
    assert store.count_active(LOCAL_CALLER.id) == len(ids)
    assert http.get("/v1/usage").json()["jobs"] == len(ids)
    metrics = http.get("/metrics").text
    assert re.search(rf'^swapface_jobs{{state="queued"}} {len(ids)}(\.0)?$', metrics, re.M), metrics


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request) -> dict[str, str]:
    """Service settings for its job store: the default SQLite file, or a fresh PostgreSQL database."""
    return {} if request.param == "sqlite" else {"database_url": request.getfixturevalue("pg_url")}


def test_200_concurrent_submissions_each_get_a_job_listed_once(tmp_path, pictures, database):
    source, target = pictures
    files = [("source", ("me.jpg", source, "image/jpeg")), ("target", ("them.jpg", target, "image/jpeg"))]

    def submit(index: int) -> Callable[[httpx.Client], tuple[int, int, dict, str]]:
        def call(http: httpx.Client) -> tuple[int, int, dict, str]:
            answer = http.post("/v1/jobs", files=files, data={"face_mask_blur": f"{index % 100 / 100:.2f}"})
            return index, answer.status_code, answer.json(), answer.headers.get("location", "")
        return call

    with live_service(tmp_path, workers=0, **database) as svc, svc.client() as http:
        started = time.monotonic()
        answers = concurrently(svc, [submit(i) for i in range(SUBMISSIONS)])
        elapsed = time.monotonic() - started
        assert [status for _, status, _, _ in answers] == [201] * SUBMISSIONS, [a for a in answers if a[1] != 201][:3]
        ids = [body["id"] for _, _, body, _ in answers]
        assert len(set(ids)) == SUBMISSIONS
        for index, _, body, location in answers:  # each answer is its own request's job
            assert location == f"/v1/jobs/{body['id']}" and body["status"] == "queued" and body["kind"] == "image"
            assert body["options"].get("face_mask_blur", 0.3) == pytest.approx(index % 100 / 100)

        pages = every_listed_job(http, limit=50)
        assert [len(p) for p in pages] == [50, 50, 50, 50]
        listed = [j["id"] for page in pages for j in page]
        assert len(listed) == len(set(listed)) == SUBMISSIONS and set(listed) == set(ids)
        created = [j["created_at"] for page in pages for j in page]
        assert created == sorted(created, reverse=True)  # newest first across page boundaries

        assert_store_agrees(svc, http, set(ids))
        folders = job_folders(svc)
        assert set(folders) == set(ids)
        assert all(stored == {"inputs/source-0.jpg", "inputs/target.jpg"} for stored in folders.values())
    print(f"\n{SUBMISSIONS} submissions from {CLIENTS} clients in {elapsed:.1f} s "
          f"({SUBMISSIONS / elapsed:.0f}/s)")


def test_idempotency_keys_under_concurrent_repeats(tmp_path, pictures, database):
    source, target = pictures
    files = [("source", ("me.jpg", source, "image/jpeg")), ("target", ("them.jpg", target, "image/jpeg"))]
    keys = [f"order-{n:03d}" for n in range(IDEMPOTENCY_KEYS)]
    gates = {key: threading.Barrier(REPEATS, timeout=60) for key in keys}

    def submit(key: str) -> Callable[[httpx.Client], tuple[str, int, str]]:
        def call(http: httpx.Client) -> tuple[str, int, str]:
            gates[key].wait()  # the repeats of one key leave together
            answer = http.post("/v1/jobs", files=files, headers={"Idempotency-Key": key})
            return key, answer.status_code, answer.json().get("id", answer.text)
        return call

    calls = [submit(key) for key in keys for _ in range(REPEATS)]  # a key's repeats side by side
    with live_service(tmp_path, workers=0, kek=KEK, **database) as svc, svc.client() as http:
        answers = concurrently(svc, calls)
        by_key: dict[str, list[tuple[int, str]]] = {}
        for key, status, job_id in answers:
            by_key.setdefault(key, []).append((status, job_id))
        assert set(by_key) == set(keys)
        for key, seen in by_key.items():
            assert len(seen) == REPEATS
            assert len({job_id for _, job_id in seen}) == 1, (key, seen)  # one job per key
            assert sorted(status for status, _ in seen) == [200] * (REPEATS - 1) + [201], (key, seen)
        ids = {seen[0][1] for seen in by_key.values()}
        assert len(ids) == IDEMPOTENCY_KEYS

        listed = [j["id"] for page in every_listed_job(http, limit=50) for j in page]
        assert len(listed) == IDEMPOTENCY_KEYS and set(listed) == ids
        assert_store_agrees(svc, http, ids)
        assert {svc.runtime.store.get(i).idempotency_key for i in ids} == set(keys)
        # what the losing repeats stored was dropped again: inputs and data keys of the 50 jobs only
        folders = job_folders(svc)
        assert set(folders) == ids, f"{len(set(folders) - ids)} folders of rejected repeats left"
        root = Path(urlparse(svc.settings.resolved_storage_url()).path)
        assert {p.stem for p in (root / KEYS_DIR).iterdir()} == ids

        # a repeat now, after the race, still answers the same job
        key = keys[7]
        again = http.post("/v1/jobs", files=files, headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json()["id"] == by_key[key][0][1]


# --- the store: concurrent claims -----------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg_url")  # a fresh database, dropped afterwards; skips without a server


@pytest.mark.parametrize("engines", ["one engine", "one engine per worker"])
def test_concurrent_claims_take_every_job_exactly_once(store_url, engines):
    workers, jobs = 8, 100
    stores = [JobStore(make_engine(store_url))]
    if engines == "one engine per worker":  # like worker processes, each with its own connections
        stores += [JobStore(make_engine(store_url)) for _ in range(workers - 1)]
    try:
        main = stores[0]
        spec = {"sources": [], "target": "t", "output": "o", "work_dir": "w"}
        created = [main.create(NewJob(owner="load", kind="image", spec=spec))[0].id for _ in range(jobs)]
        claimed: dict[str, list[JobRecord]] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(workers, timeout=60)

        def work(index: int) -> None:
            store, worker_id = stores[index % len(stores)], f"worker-{index}"
            mine = claimed.setdefault(worker_id, [])
            try:
                start.wait()
                for _ in range(jobs + 1):  # bounded: nobody can take more than every job
                    job = store.claim(worker_id, lease_seconds=120)
                    if job is None:
                        return
                    mine.append(job)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,), name=f"claimer-{i}") for i in range(workers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "a claiming thread hung"
        assert not errors, errors

        taken = [job.id for mine in claimed.values() for job in mine]
        doubles = [job_id for job_id, n in Counter(taken).items() if n > 1]
        assert not doubles, f"claimed more than once: {doubles[:5]}"
        assert sorted(taken) == sorted(created)
        for worker_id, mine in claimed.items():
            for job in mine:
                assert job.status == "running" and job.attempts == 1 and job.lease_owner == worker_id
        # the database agrees with what each worker holds
        for job_id in created:
            row = main.get(job_id)
            assert row is not None and row.status == "running" and row.attempts == 1
        owners = {job.id: worker_id for worker_id, mine in claimed.items() for job in mine}
        assert all(main.get(i).lease_owner == owners[i] for i in created)
        assert main.claim("late", lease_seconds=120) is None
        assert main.counts_by_state()["running"] == jobs

        # and each worker can finish exactly the jobs it holds, and none of another's
        for worker_id, mine in claimed.items():
            for job in mine:
                assert not main.finish(job.id, "someone-else", "succeeded")
                assert main.finish(job.id, worker_id, "succeeded")
        assert main.counts_by_state() == {state: (jobs if state == "succeeded" else 0) for state in STATES}
        print(f"\n{jobs} jobs claimed by {workers} threads ({engines}) in {elapsed:.2f} s; "
              f"per worker: {sorted(len(m) for m in claimed.values())}")
    finally:
        for store in stores:
            store.engine.dispose()
