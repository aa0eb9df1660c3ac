"""Logs: real jobs with distinctive file names leave none of them (nor paths, keys, secrets, arrays) in the logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import skvideo
from PIL import Image

from swapface import storage
from swapface.cli.main import main as cli
from swapface.config import load_settings
from swapface.service.logging import REDACTED, configure_logging

CARPHONE = Path(skvideo.__file__).parent / "datasets/data/carphone_pristine.mp4"
MARK = "zqxprivate"  # appears in every user-chosen name in this test
KEK = base64.b64encode(b"L" * 32).decode()
SECRET = "whsec_" + base64.b64encode(b"S" * 32).decode()
API_KEY = "swf_live_Zq8r7b1kT9nY2mW4pL6vX3cA"


@pytest.fixture()
def captured():
    """Every log record of the process, through the service's JSON handler, at DEBUG."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(logging.DEBUG, stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _assert_clean(text: str, tmp_path: Path) -> None:
    forbidden = [MARK, str(tmp_path), tmp_path.name, KEK, SECRET, SECRET[6:], API_KEY, ".jpg", ".mp4", "gs://",
                 "file://", "https://", "X-Goog-Signature"]
    for item in forbidden:
        assert item not in text, f"log output contains {item!r}"
    assert "Traceback" not in text


def test_forbidden_content_is_redacted(captured, tmp_path):
    log = logging.getLogger("swapface.test")
    log.info("job %s done", "3f2a9c1e-0000-4000-8000-1234567890ab", extra={"job_id": "3f2a9c1e-0000-4000-8000-1234567890ab"})
    log.info("read %s", str(tmp_path / f"{MARK}_holiday.jpg"))
    log.info("uploaded to gs://studio-bucket/%s/clip.mp4", MARK)
    log.info("signed https://storage.googleapis.com/b/%s?X-Goog-Signature=abc123 ready", MARK)
    log.info("key %s secret %s kek %s", API_KEY, SECRET, KEK)
    log.warning("request", extra={"authorization": f"Bearer {API_KEY}", "path": f"/srv/{MARK}",
                                  "file_name": f"{MARK}.png", "embedding": np.ones(128, np.float32),
                                  "landmarks": [[1.0, 2.0]] * 468, "pixels": b"\xff\xd8\xff" * 10,
                                  "detail": f"could not open {MARK}_face.webp", "status_code": 422})
    try:
        open(tmp_path / f"{MARK}_missing.jpg")
    except OSError:
        log.exception("failed to open the target")
    log.info("GET /v1/jobs/abc/result?token=%s 200", API_KEY)
    lines = _lines(captured)
    text = captured.getvalue()
    _assert_clean(text, tmp_path)
    assert lines[0]["job_id"] == "3f2a9c1e-0000-4000-8000-1234567890ab" and "3f2a9c1e" in lines[0]["msg"]
    warn = next(line for line in lines if line["level"] == "warning")
    assert warn["embedding"] == REDACTED and warn["landmarks"] == REDACTED and warn["pixels"] == REDACTED
    assert warn["status_code"] == 422
    failed = next(line for line in lines if line["msg"] == "failed to open the target")
    assert failed["exc_type"] == "FileNotFoundError"
    assert lines[-1]["msg"] == "GET /v1/jobs/abc/result 200"


def _trust_flow(tmp_path: Path, output: Path) -> None:
    """Encrypted storage, webhook delivery and retention around a finished output (all log on the way)."""
    from swapface.jobs.retention import Retention
    from swapface.service.webhooks import notify_job_finished

    root = tmp_path / f"{MARK}_objects"
    settings = load_settings(storage_url=root.as_uri(), kek=KEK, data_dir=tmp_path / "data",
                             database_url=f"sqlite:///{tmp_path / 'jobs.db'}", webhook_max_attempts=1)
    uri = storage.join(root.as_uri(), "job42", "output", output.name)
    storage.publish(output, uri, settings=settings)
    with storage.fetch(uri, settings=settings) as local:
        assert Path(local).read_bytes() == output.read_bytes()
    result = notify_job_finished("job42", "succeeded", f"https://{MARK}.invalid/hook", SECRET, settings)
    assert result.state == "refused"
    assert Retention(settings).purge_job("job42") == 1


def test_image_job_logs_carry_no_names(captured, tmp_path, astronaut, driver):
    folder = tmp_path / f"{MARK}_album"
    folder.mkdir()
    source, target, output = folder / f"{MARK}_me.jpg", folder / f"{MARK}_party.jpg", folder / f"{MARK}_out.jpg"
    Image.fromarray(astronaut).save(source)
    Image.fromarray(driver).save(target)
    assert cli(["run", "-s", str(source), "-t", str(target), "-o", str(output), "-q"]) == 0
    _trust_flow(tmp_path, output)
    _assert_clean(captured.getvalue(), tmp_path)
    lines = _lines(captured)
    assert any(line.get("job_id") == "job42" for line in lines)  # the job is still traceable by its id


@pytest.mark.slow
def test_video_job_logs_carry_no_names(captured, tmp_path, astronaut):
    pytest.importorskip("swapface.jobs.local_run", reason="the video pipeline is not in this tree yet")
    folder = tmp_path / f"{MARK}_clips"
    folder.mkdir()
    source, target, output = folder / f"{MARK}_me.jpg", folder / f"{MARK}_talk.mp4", folder / f"{MARK}_out.mp4"
    Image.fromarray(astronaut).save(source)
    shutil.copyfile(CARPHONE, target)
    assert cli(["run", "-s", str(source), "-t", str(target), "-o", str(output), "-q", "--trim-frame-end", "10"]) == 0
    _trust_flow(tmp_path, output)
    _assert_clean(captured.getvalue(), tmp_path)
