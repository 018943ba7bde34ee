"""A real `logfill api`: malformed requests from anyone get problem+json, the log no traceback.

What an operator watching the service's stderr sees while an anonymous client sends
everything aiohttp's parser refuses, and bodies that are not what they claim.
"""

from __future__ import annotations

import socket
import zlib
from pathlib import Path

import orjson

from tests.support.processes import api_process, make_workspace

PROBLEM = "application/problem+json"


def send(url: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Write `raw` on a fresh connection; (status, headers, body), read until closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, content


def post(key: str, encoding: bytes, content: bytes) -> bytes:
    return (
        b"POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: " + encoding + b"\r\n"
        b"Content-Length: " + str(len(content)).encode() + b"\r\n\r\n" + content
    )


def test_an_anonymous_client_gets_problems_and_cannot_put_a_traceback_in_the_log(
    database_url: str, tmp_path: Path
) -> None:
    key = make_workspace(database_url)
    attacks = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-C: a\x01b\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        post(key, b"zstd", b"(zstd)"),
        post(key, b"gzip", b"not gzip"),
        post(key, b"deflate", b"not deflate"),
    ] * 5
    with api_process(database_url, tmp_path / "api") as api:
        answers = [send(api.url, raw) for raw in attacks]
        valid = orjson.dumps({"chain_id": 1, "addresses": ["0x" + "22" * 20], "topics": [None]})
        created = send(api.url, post(key, b"gzip", zlib.compress(valid, wbits=31)))
    for status, headers, content in answers:
        assert status in (400, 415) and headers["content-type"] == PROBLEM, content
        assert orjson.loads(content)["status"] == status
    assert created[0] == 201, created[2]

    log = (tmp_path / "api" / "api.log").read_text()
    assert "Traceback" not in log, log
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line["level"] in ("error", "critical")], log
    rejected = [line for line in lines if line["event"] == "http_request_rejected"]
    assert len(rejected) <= len(attacks)  # one line per malformed request at most
    assert {line["level"] for line in rejected} == {"warning"}
