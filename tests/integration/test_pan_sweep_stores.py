"""PAN sweep of real stores: every value planted in PostgreSQL and Redis is found and located."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fincore.cards import mask_pan
from fincore.netutil import free_port
from fincore.pan_sweep import Sweeper, SweepError, main, sweep, sweep_postgres, sweep_redis
from tests.unit.fincore.test_pan_sweep import (
    CVC_CANARY,
    ENCODINGS,
    fresh_pan,
    json_escaped,
    url_encoded,
)

PAN_A = "4242424242424242"
PAN_B = "5555555555554444"
PAN_C = "378282246310005"


def encoded(name: str, value: str) -> bytes:
    return ENCODINGS[name][0](value)


# ---------------------------------------------------------------- PostgreSQL


def _psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _plant_postgres(url: str, fresh: str) -> list[tuple[str, ...]]:
    """Tables in two schemas with values planted in each column type; returns what to expect."""
    import psycopg

    with psycopg.connect(_psycopg_url(url), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE DOMAIN app.blob AS bytea")
        conn.execute(
            """CREATE TABLE public.payments (
                 id bigserial PRIMARY KEY, note text, memo varchar(200), meta jsonb, doc json,
                 raw bytea, card_number bigint, tags text[], created timestamptz DEFAULT now())"""
        )
        conn.execute(
            "INSERT INTO public.payments (note, memo, meta, doc, raw, card_number, tags) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            ("paid", "ok", json.dumps({"a": 1}), "{}", b"\x00\x01", 1764249488123, ["x"]),
        )
        conn.execute(
            "INSERT INTO public.payments (note, memo, meta, doc, raw, card_number, tags) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                f"card {PAN_A} declined",
                f"cvc={url_encoded(CVC_CANARY)}",
                json.dumps({"blob": base64.b64encode(PAN_B.encode()).decode()}),
                '{"card":{"number":"' + json_escaped(PAN_C) + '"}}',
                b"\xff\xfe" + fresh.encode("utf-16-le"),
                int(fresh),
                ["ok", PAN_A.encode().hex()],
            ),
        )
        conn.execute("CREATE VIEW public.payment_notes AS SELECT id, note FROM public.payments")
        conn.execute(
            "CREATE TABLE app.events (tenant text, seq int, body text, PRIMARY KEY (tenant, seq))"
        )
        conn.execute(
            "INSERT INTO app.events VALUES ('t1', 6, 'nothing'), ('t1', 7, %s)",
            (encoded("base64url-json", PAN_B).decode(),),
        )
        conn.execute("CREATE TABLE app.nopk (payload text)")
        conn.execute("INSERT INTO app.nopk VALUES (%s)", (json.dumps({"cvc": CVC_CANARY}),))
        conn.execute("CREATE TABLE app.blobs (id int PRIMARY KEY, data app.blob)")
        conn.execute("INSERT INTO app.blobs VALUES (1, %s)", (f"raw {PAN_C}".encode(),))
        # Enough rows to stream in many batches (batch_rows=100 below).
        conn.execute("CREATE TABLE app.big (id int PRIMARY KEY, line text)")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO app.big VALUES (%s, %s)",
                [
                    (
                        i,
                        json.dumps(
                            {"ts_ms": 1764249488000 + i, "order": f"2026112700{i:04d}"}
                            if i != 2345
                            else {"leak": PAN_A.encode("utf-16-be").hex()}
                        ),
                    )
                    for i in range(1, 3001)
                ],
            )
        conn.execute(
            """CREATE TABLE public.clean (
                 id serial PRIMARY KEY, ts bigint, amount numeric(12, 2), order_id text,
                 request_id uuid, digest text, phone text)"""
        )
        conn.execute(
            "INSERT INTO public.clean (ts, amount, order_id, request_id, digest, phone) "
            "SELECT 1764249488000 + g, g * 19.99, '20261127' || lpad(g::text, 6, '0'), "
            "gen_random_uuid(), encode(sha256(g::text::bytea), 'hex'), '+4917' || (g + 612345678) "
            "FROM generate_series(1, 2000) AS g"
        )
    return [
        ("app", "big", "line", "id=2345", mask_pan(PAN_A), "hex>utf-16be"),
        ("app", "blobs", "data", "id=1", mask_pan(PAN_C), "raw"),
        ("app", "events", "body", "tenant=t1,seq=7", mask_pan(PAN_B), "base64url"),
        ("app", "nopk", "payload", "ctid=(0,1)", "canary#1", "raw"),
        ("public", "payments", "card_number", "id=2", mask_pan(fresh), "raw"),
        ("public", "payments", "doc", "id=2", mask_pan(PAN_C), "json-escape"),
        ("public", "payments", "memo", "id=2", "canary#1", "url"),
        ("public", "payments", "meta", "id=2", mask_pan(PAN_B), "base64"),
        ("public", "payments", "note", "id=2", mask_pan(PAN_A), "raw"),
        ("public", "payments", "raw", "id=2", mask_pan(fresh), "utf-16le"),
        ("public", "payments", "tags", "id=2", mask_pan(PAN_A), "hex"),
    ]


@pytest.mark.postgres
def test_postgres_every_planted_value_is_found_with_its_location(
    fresh_postgres_url: Callable[[], str],
) -> None:
    """Text, varchar, jsonb, json, bytea, domain, bigint and array columns in every schema."""
    url = fresh_postgres_url()
    fresh = fresh_pan()
    expected = _plant_postgres(url, fresh)
    sweeper = Sweeper([CVC_CANARY], batch_rows=100)
    sweeper.postgres(url)
    assert sweeper.result.errors == []
    got = sorted(
        (f.schema, f.table, f.column, f.row, f.masked, f.encoding) for f in sweeper.findings
    )
    assert got == sorted(expected)
    assert sweeper.result.stats["rows"] == 2 + 2 + 1 + 1 + 3000 + 2000
    assert all(f.store == "postgres" and f.target == url for f in sweeper.findings)
    finding = sweeper.findings[0]
    assert finding.location.startswith(f"{url} {finding.schema}.{finding.table}.")


@pytest.mark.postgres
def test_postgres_clean_database_gives_no_finding(fresh_postgres_url: Callable[[], str]) -> None:
    """Numbers that are not card numbers (timestamps, amounts, order ids, uuids) give nothing."""
    import psycopg

    url = fresh_postgres_url()
    with psycopg.connect(_psycopg_url(url), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ledger AS SELECT g AS id, 1764249488000 + g AS ts_ms, "
            "(1764249488 + g)::bigint * 1000000000 AS ts_ns, g * 1999 AS amount, "
            "'2026112700' || lpad(g::text, 4, '0') AS order_id, gen_random_uuid() AS ref, "
            "encode(sha256(g::text::bytea), 'hex') AS digest, "
            "encode(sha256(g::text::bytea), 'base64') AS digest64 "
            "FROM generate_series(1, 5000) AS g"
        )
    assert sweep_postgres(url, canaries=[CVC_CANARY]) == []


@pytest.mark.postgres
def test_postgres_unreachable_is_an_error_with_the_password_hidden(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that does not answer raises; the CLI exits 2 without printing the password."""
    url = f"postgresql://sweeper:s3cret-pw@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(SweepError, match="cannot connect"):
        sweep_postgres(url)
    assert main([url]) == 2
    out, err = capsys.readouterr()
    assert "s3cret-pw" not in out + err
    assert "sweeper:***@127.0.0.1" in err


# ---------------------------------------------------------------- Redis


def _plant_redis(url: str, fresh: str) -> list[tuple[str | None, ...]]:
    import redis

    client = redis.Redis.from_url(url)
    client.set("session:1", json.dumps({"user": "u1", "last_card": PAN_A}))
    client.set("blob", base64.b64encode(fresh.encode()))
    client.set(f"card:{PAN_B}", "1")
    client.hset("customer:9", mapping={"number": PAN_C.encode().hex(), "name": "Ann"})
    client.hset("customer:10", mapping={f"cvc:{CVC_CANARY}": "x"})
    client.rpush("queue", "a", "b", "c", url_encoded(PAN_A), "e")
    client.sadd("seen", "x", encoded("utf-16be", PAN_B))
    client.zadd("ranked", {json_escaped(PAN_C): 1, "plain": 2, "scored": int(PAN_A)})
    client.xadd("events", {"kind": "ping", "n": "1"})
    client.xadd("events", {"kind": "charge", "payload": encoded("base64-json", fresh)})
    client.rpush("long", *[f"item-{i}-{1764249488000 + i}" for i in range(2500)])
    client.lset("long", 2222, f"pan {grouped_with_dashes(fresh)}")
    client.set("clean:ts", "1764249488123 20261127000123 +4917612345678")
    client.hset(
        "clean:h", mapping={"amount": "1999", "uuid": "9f8e7d6c-4242-4242-4242-424242424242"}
    )
    client.close()
    return [
        ("blob", "value", None, mask_pan(fresh), "base64"),
        (f"card:{mask_pan(PAN_B)}", "key name", None, mask_pan(PAN_B), "raw"),
        ("customer:10", "field name", "cvc:[canary#1]", "canary#1", "raw"),
        ("customer:9", "field value", "number", mask_pan(PAN_C), "hex"),
        ("events", "stream field value", "payload", mask_pan(fresh), "base64"),
        ("long", "list item", "index 2222", mask_pan(fresh), "raw"),
        ("queue", "list item", "index 3", mask_pan(PAN_A), "url"),
        ("ranked", "score", "scored", mask_pan(PAN_A), "raw"),
        ("ranked", "sorted-set member", None, mask_pan(PAN_C), "json-escape"),
        ("seen", "set member", None, mask_pan(PAN_B), "utf-16be"),
        ("session:1", "value", None, mask_pan(PAN_A), "raw"),
    ]


def grouped_with_dashes(pan: str) -> str:
    return "-".join(pan[i : i + 4] for i in range(0, len(pan), 4))


@pytest.mark.redis
def test_redis_every_type_and_key_name_is_swept(redis_url: str) -> None:
    """Strings, hashes, lists, sets, sorted sets, streams and key names: all found, located."""
    fresh = fresh_pan()
    expected = _plant_redis(redis_url, fresh)
    findings = sweep_redis(redis_url, canaries=[CVC_CANARY])
    got = []
    for f in findings:
        field = f.field
        if f.part and f.part.startswith("stream"):
            assert field is not None and field.startswith("entry ")
            field = field.rsplit(" ", 1)[1]
        got.append((f.key, f.part, field, f.masked, f.encoding))
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert all(f.store == "redis" and f.target == redis_url for f in findings)
    key_finding = next(f for f in findings if f.part == "key name")
    assert PAN_B not in key_finding.location and mask_pan(PAN_B) in key_finding.location


@pytest.mark.redis
def test_redis_clean_database_gives_no_finding(redis_url: str) -> None:
    """Keys and values full of timestamps, ids and amounts give no finding."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for i in range(300):
        client.set(f"order:2026112700{i:04d}", json.dumps({"ts_ms": 1764249488000 + i}))
        client.hset(f"h:{i}", mapping={"amount": str(i * 1999), "ts": str(1764249488 + i)})
    client.zadd("by_time", {f"m{i}": 1764249488000 + i for i in range(300)})
    client.close()
    assert sweep_redis(redis_url, canaries=[CVC_CANARY]) == []


@pytest.mark.redis
def test_redis_unreachable_is_an_error() -> None:
    """A Redis that does not answer raises instead of reporting clean."""
    with pytest.raises(SweepError, match="cannot connect"):
        sweep_redis(f"redis://127.0.0.1:{free_port()}/0")


# ---------------------------------------------------------------- all stores at once


@pytest.mark.postgres
@pytest.mark.redis
def test_cli_sweeps_every_store_kind_in_one_run(
    fresh_postgres_url: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One `fincore sweep` over a folder, PostgreSQL and Redis: exit 1, every value masked."""
    fresh = fresh_pan()
    pg_url = fresh_postgres_url()
    pg_expected = _plant_postgres(pg_url, fresh)
    redis_expected = _plant_redis(redis_url, fresh)
    (tmp_path / "app.log").write_text(f"ok\n{json.dumps({'n': json_escaped(fresh)})}\n")
    code = main(["--json", "--canary", CVC_CANARY, str(tmp_path), pg_url, redis_url])
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert code == 1 == document["exit_code"]
    stores = [f["store"] for f in document["findings"]]
    assert stores.count("file") == 1
    assert stores.count("postgres") == len(pg_expected)
    assert stores.count("redis") == len(redis_expected)
    for value in (fresh, PAN_A, PAN_B, PAN_C, CVC_CANARY):
        assert value not in out + err
    # The library call agrees with the CLI.
    assert len(sweep([str(tmp_path), pg_url, redis_url], [CVC_CANARY])) == len(stores)
