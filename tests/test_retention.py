"""Retention: expired jobs are deleted (and their keys shredded), fresh ones kept, every deletion audited."""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path

import pytest

from swapface import storage
from swapface.cli.main import main as cli
from swapface.config import load_settings
from swapface.jobs.retention import Retention
from swapface.storage.crypto import DecryptError

KEK = base64.b64encode(b"K" * 32).decode()
DAY = 86400.0


@pytest.fixture()
def env(tmp_path: Path):
    root = tmp_path / "objects"
    settings = load_settings(storage_url=root.as_uri(), kek=KEK, data_dir=tmp_path / "data",
                             database_url=f"sqlite:///{tmp_path / 'jobs.db'}", retention_days=7,
                             retention_days_by_key={"short": 0.5})
    payload = tmp_path / "payload.jpg"
    payload.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))
    return root, settings, payload


def _job(root: Path, settings, payload: Path, job_id: str, age_days: float) -> None:
    for name in ("input/target.jpg", "work/chunk-0000.mp4", "output/result.jpg"):
        storage.publish(payload, storage.join(root.as_uri(), job_id, name), settings=settings)
    stamp = time.time() - age_days * DAY
    for path in (root / job_id).rglob("*"):
        os.utime(path, (stamp, stamp))


def test_sweep_removes_expired_jobs_and_keeps_fresh_ones(env, tmp_path):
    root, settings, payload = env
    _job(root, settings, payload, "old1", age_days=8)
    _job(root, settings, payload, "fresh1", age_days=1)
    backup = tmp_path / "backup.bin"
    shutil.copyfile(root / "old1" / "output" / "result.jpg", backup)
    retention = Retention(settings)
    report = retention.sweep()
    assert report.jobs == ["old1"] and report.objects == 3 and report.kept_jobs == 1
    assert not (root / "old1").exists() and not (root / "_keys" / "old1.json").exists()
    assert (root / "fresh1" / "output" / "result.jpg").exists()
    with storage.fetch(storage.join(root.as_uri(), "fresh1", "output/result.jpg"), settings=settings) as f:
        assert Path(f).read_bytes() == payload.read_bytes()
    # a copy kept elsewhere no longer decrypts: the job's data key is gone
    (root / "old1" / "output").mkdir(parents=True)
    shutil.copyfile(backup, root / "old1" / "output" / "result.jpg")
    with pytest.raises(DecryptError):
        with storage.fetch(storage.join(root.as_uri(), "old1", "output/result.jpg"), settings=settings):
            pass
    rows = retention.audit("old1")
    assert sorted(r["what"] for r in rows) == ["input", "intermediate", "key", "output"]
    assert {r["reason"] for r in rows} == {"expired"}
    assert not any("result" in str(v) or "target" in str(v) for r in rows for v in r.values())  # no names


def test_per_key_retention_override(env):
    root, settings, payload = env
    _job(root, settings, payload, "jobA", age_days=1)
    _job(root, settings, payload, "jobB", age_days=1)
    keys = {"jobA": "short", "jobB": "studio"}
    report = Retention(settings).sweep(key_of=keys.get)
    assert report.jobs == ["jobA"] and (root / "jobB").exists() and not (root / "jobA").exists()


def test_intermediates_go_when_a_job_ends_and_delete_removes_everything(env):
    root, settings, payload = env
    _job(root, settings, payload, "job1", age_days=0)
    retention = Retention(settings)
    assert retention.remove_intermediates("job1") == 1
    assert not (root / "job1" / "work" / "chunk-0000.mp4").exists()
    assert (root / "job1" / "output" / "result.jpg").exists()
    assert retention.purge_job("job1") == 2
    assert not (root / "job1").exists() and not (root / "_keys" / "job1.json").exists()
    reasons = [(r["what"], r["reason"]) for r in retention.audit("job1")]
    assert reasons == [("intermediate", "job_ended"), ("input", "deleted"), ("output", "deleted"), ("key", "deleted")]


def test_cli_sweep_and_rotate(env, monkeypatch, capsys):
    root, settings, payload = env
    _job(root, settings, payload, "old2", age_days=30)
    _job(root, settings, payload, "new2", age_days=0)
    monkeypatch.setenv("SWAPFACE_STORAGE_URL", root.as_uri())
    monkeypatch.setenv("SWAPFACE_DATA_DIR", str(root.parent / "data"))
    monkeypatch.setenv("SWAPFACE_DATABASE_URL", settings.database_url)
    other = base64.b64encode(b"N" * 32).decode()
    monkeypatch.setenv("SWAPFACE_KEK", f"new:{other},default:{KEK}")
    assert cli(["storage", "rotate-kek"]) == 0
    assert "re-wrapped 2 data key(s)" in capsys.readouterr().out
    monkeypatch.setenv("SWAPFACE_KEK", f"new:{other}")
    assert cli(["sweep"]) == 0
    assert "deleted 3 object(s) of 1 expired job(s); 1 job(s) kept" in capsys.readouterr().out
    with storage.fetch(storage.join(root.as_uri(), "new2", "input/target.jpg")) as f:
        assert Path(f).read_bytes() == payload.read_bytes()
    monkeypatch.delenv("SWAPFACE_KEK")
    assert cli(["storage", "rotate-kek"]) == 2  # no key configured: one-line input error
