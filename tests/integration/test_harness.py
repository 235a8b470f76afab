"""The harness's real servers start, answer and isolate tests from each other."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest


@pytest.mark.postgres
def test_postgres_session_database_is_private(postgres_url: str) -> None:
    """The session database is a fresh, empty, writable database on a real server."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        assert (
            conn.execute(sa.text("SELECT current_database()"))
            .scalar_one()
            .startswith("fincore_test_")
        )
        conn.execute(sa.text("CREATE TABLE harness_probe (x int)"))
        conn.execute(sa.text("INSERT INTO harness_probe VALUES (1)"))
        assert conn.execute(sa.text("SELECT count(*) FROM harness_probe")).scalar_one() == 1
        conn.execute(sa.text("DROP TABLE harness_probe"))
    engine.dispose()


@pytest.mark.redis
def test_redis_is_flushed_between_tests(redis_url: str) -> None:
    """Each test starts with an empty Redis database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("probe", "1")
    assert client.get("probe") == b"1"


@pytest.mark.aws
def test_moto_server_speaks_sqs(aws) -> None:  # type: ignore[no-untyped-def]
    """boto3 reaches moto in server mode over HTTP through the environment."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="harness")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert messages[0]["Body"] == "hello"
    assert aws.endpoint_url.startswith("http://127.0.0.1:")


@pytest.mark.psp
def test_localstripe_answers_on_loopback(localstripe) -> None:  # type: ignore[no-untyped-def]
    """localstripe creates a PaymentMethod from a test card."""
    response = httpx.post(
        localstripe.url + "/v1/payment_methods",
        auth=(localstripe.api_key, ""),
        data={
            "type": "card",
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("pm_")


@pytest.mark.sftp
def test_sftp_server_serves_files_read_only(sftp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real SFTP client logs in with its key, reads a file and cannot write."""
    import paramiko

    (sftp_server.root / "settlement.csv").write_text("a,b\n1,2\n")
    known = tmp_path / "known_hosts"
    known.write_text(sftp_server.known_hosts_line() + "\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.username,
        key_filename=str(sftp_server.client_key),
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        assert sftp.listdir(".") == ["settlement.csv"]
        with sftp.open("settlement.csv") as handle:
            assert handle.read() == b"a,b\n1,2\n"
        with pytest.raises(PermissionError):
            sftp.open("new.csv", "w").write(b"x")
    finally:
        client.close()


@pytest.mark.postgres
def test_throwaway_postgres_starts_from_installed_binaries(tmp_path: Path) -> None:
    """Where no server answers, the harness can initdb and run a private PostgreSQL."""
    from tests.harness import postgres

    started = postgres.throwaway_server(tmp_path)
    if started is None:
        pytest.skip("no PostgreSQL binaries installed")
    server = next(started)
    try:
        name = server.create_database()
        with server.admin() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server.drop_database(name)
    finally:
        started.close()


@pytest.mark.redis
def test_throwaway_redis_starts_from_installed_binary(tmp_path: Path) -> None:
    """Where no server answers, the harness can run a private redis-server on a free port."""
    from tests.harness import redis

    started = redis.throwaway_server(tmp_path)
    if started is None:
        pytest.skip("no redis-server installed")
    server = next(started)
    try:
        assert server.client().ping()
        assert server.port != 6379
    finally:
        started.close()
