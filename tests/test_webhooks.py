"""Webhooks: Standard Webhooks signatures, retries with Retry-After, no redirects, 410 disables, SSRF refused."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import standardwebhooks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swapface.config import load_settings
from swapface.errors import InputError
from swapface.service.webhooks import WebhookDeliveries, new_secret, notify_job_finished, validate_webhook_url


class Receiver:
    """A webhook receiver on loopback that answers from a script and records every request."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append({"path": self.path, "body": body.decode(),
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, headers = receiver.script.pop(0) if receiver.script else (204, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def settings(tmp_path: Path):
    return load_settings(database_url=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path, webhook_allow_http=True,
                         webhook_allowlist=["127.0.0.1/32"], webhook_backoff_s=0.01, webhook_max_attempts=3)


def test_signed_event_verifies_with_standardwebhooks_and_tamper_fails(receiver, settings):
    secret = new_secret()
    result = notify_job_finished("job-1", "succeeded", f"http://127.0.0.1:{receiver.port}/hook", secret, settings)
    assert result is not None and result.state == "delivered" and result.attempts == 1
    (req,) = receiver.requests
    headers = {k.lower(): v for k, v in req["headers"].items()}
    verified = standardwebhooks.Webhook(secret).verify(req["body"], headers)
    assert verified["type"] == "job.succeeded"
    assert verified["data"] == {"job_id": "job-1", "status": "succeeded"}  # thin: ids and status only
    assert headers["webhook-id"] == result.id and headers["webhook-signature"].startswith("v1,")
    tampered = req["body"].replace("succeeded", "failed")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(req["body"], headers)
    # the same event is not sent twice (a retried worker calls again)
    again = notify_job_finished("job-1", "succeeded", f"http://127.0.0.1:{receiver.port}/hook", secret, settings)
    assert again.state == "delivered" and again.id == result.id and len(receiver.requests) == 1


def test_retries_honour_retry_after_and_keep_the_webhook_id(receiver, settings):
    receiver.script = [(503, {"Retry-After": "3"}), (500, {})]
    waits: list[float] = []
    result = notify_job_finished("job-2", "failed", f"http://127.0.0.1:{receiver.port}/hook", new_secret(), settings,
                                 sleep=waits.append)
    assert result.state == "delivered" and result.attempts == 3
    assert waits[0] >= 3.0 and waits[1] < 1.0  # Retry-After, then the (small) backoff
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1 and len(receiver.requests) == 3
    row = WebhookDeliveries(settings).get("job-2", "failed")
    assert row["state"] == "delivered" and row["attempts"] == 3 and row["last_status"] == 204


def test_redirects_are_failures_and_not_followed(receiver, settings):
    receiver.script = [(302, {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"})] * 3
    result = notify_job_finished("job-3", "succeeded", f"http://127.0.0.1:{receiver.port}/hook", new_secret(),
                                 settings, sleep=lambda s: None)
    assert result.state == "failed" and result.attempts == 3 and result.last_status == 302
    assert [r["path"] for r in receiver.requests] == ["/hook"] * 3


def test_410_disables_the_endpoint(receiver, settings):
    url = f"http://127.0.0.1:{receiver.port}/gone"
    receiver.script = [(410, {})]
    assert notify_job_finished("job-4", "cancelled", url, new_secret(), settings).state == "disabled"
    later = notify_job_finished("job-5", "succeeded", url, new_secret(), settings)
    assert later.state == "disabled" and later.attempts == 0 and len(receiver.requests) == 1
    assert WebhookDeliveries(settings).is_disabled(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://192.168.1.20/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",  # a name that resolves to loopback
        "https://user:pw@93.184.216.34/hook",
        "http://93.184.216.34/hook",  # plain http is off by default
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "https:///nohost",
    ],
)
def test_ssrf_targets_are_refused(url, tmp_path):
    strict = load_settings(database_url=f"sqlite:///{tmp_path / 'j.db'}", data_dir=tmp_path)
    with pytest.raises(InputError) as err:
        validate_webhook_url(url, strict)
    assert err.value.code == "bad_webhook_url"


def test_public_address_passes_and_is_pinned(tmp_path):
    target = validate_webhook_url("https://93.184.216.34:8443/h?x=1", load_settings(data_dir=tmp_path))
    assert target.addresses == ("93.184.216.34",) and target.connect_url("93.184.216.34") == "https://93.184.216.34:8443/h?x=1"


def test_refused_delivery_sends_nothing(receiver, tmp_path):
    strict = load_settings(database_url=f"sqlite:///{tmp_path / 'j.db'}", data_dir=tmp_path, webhook_allow_http=True)
    result = notify_job_finished("job-6", "succeeded", f"http://127.0.0.1:{receiver.port}/hook", new_secret(), strict)
    assert result.state == "refused" and receiver.requests == []


def _tls_pair(folder: Path) -> tuple[Path, ssl.SSLContext]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", ctx


def test_https_by_name_connects_to_the_validated_address_with_sni(tmp_path, monkeypatch):
    """An allow-listed name is resolved once per attempt; TLS verifies the name's certificate."""
    ca_file, ctx = _tls_pair(tmp_path)
    server = Receiver(tls=ctx)
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    try:
        settings = load_settings(database_url=f"sqlite:///{tmp_path / 'j.db'}", data_dir=tmp_path,
                                 webhook_allowlist=["localhost"], webhook_ca_file=ca_file, webhook_max_attempts=1)
        secret = new_secret()
        result = notify_job_finished("job-7", "succeeded", f"https://localhost:{server.port}/tls", secret, settings)
        assert result.state == "delivered"
        (req,) = server.requests
        assert req["headers"]["host"] == f"localhost:{server.port}"
        assert standardwebhooks.Webhook(secret).verify(req["body"], {k.lower(): v for k, v in req["headers"].items()})
        assert lookups.count("localhost") == 1  # resolved once; the connection used the address, not the name
        # without the private CA the certificate is not trusted: a failed delivery, nothing accepted
        untrusted = settings.model_copy(update={"webhook_ca_file": None})
        assert notify_job_finished("job-8", "succeeded", f"https://localhost:{server.port}/tls", secret,
                                   untrusted).state == "failed"
        assert len(server.requests) == 1
    finally:
        server.close()


def test_event_json_is_thin(receiver, settings):
    notify_job_finished("job-9", "cancelled", f"http://127.0.0.1:{receiver.port}/hook", new_secret(), settings)
    body = json.loads(receiver.requests[0]["body"])
    assert set(body) == {"type", "timestamp", "data"} and set(body["data"]) == {"job_id", "status"}
