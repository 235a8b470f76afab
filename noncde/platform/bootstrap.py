"""Non-CDE platform: the composition root. Picks one adapter per port from its URL's scheme
(allow-listed through `fincore.settings.choose_adapter`) and wires the unit of work, the
relays and the readiness checks. The API, the workers and the read models call
`build_platform()` and use only the `noncde.platform.ports` Protocols it returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fincore.settings import choose_adapter
from noncde.platform.adapters.files import FileRulesStore, path_of
from noncde.platform.adapters.memory import (
    MemoryBackend,
    MemoryEventStore,
    MemoryIdempotencyStore,
    MemoryJobQueue,
    MemoryRulesStore,
    MemoryUnitOfWork,
)
from noncde.platform.adapters.sql import (
    OutboxRelay,
    SqlDatabase,
    SqlEventStore,
    SqlIdempotencyStore,
    SqlJobQueue,
    SqlRulesStore,
    SqlUnitOfWork,
)
from noncde.platform.config import PREFIX, PlatformConfig
from noncde.platform.domain import Clock
from noncde.platform.ports import (
    EventStore,
    IdempotencyStore,
    JobQueue,
    Platform,
    Relay,
    RulesStore,
    UnitOfWork,
)


def _sql(value: Callable[[str], Any]) -> dict[str, Callable[[str], Any]]:
    return {"sqlite": value, "postgresql": value}


def build_platform(
    config: PlatformConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = time.time,
    create_schema: bool = True,
) -> Platform:
    """Build every port from `config` (default: `PlatformConfig.from_env(env)`).

    With `create_schema` the platform database's tables are created if missing (idempotent,
    safe when several processes start at once). Call `Platform.close()` at shutdown.
    """
    config = config or PlatformConfig.from_env(env)
    config.refuse_dev_defaults(env)
    database = choose_adapter(
        f"{PREFIX}DB_URL",
        config.db_url,
        {
            "memory": lambda _url: None,
            **_sql(
                lambda url: SqlDatabase(
                    url, synchronous=config.sqlite_synchronous, pool_size=config.db_pool_size
                )
            ),
        },
    )
    if database is None:
        return _memory_platform(config, clock)
    if create_schema:
        database.init_schema()
    return _sql_platform(config, database, clock)


def _rules(config: PlatformConfig, own: dict[str, Callable[[str], RulesStore]]) -> RulesStore:
    def dynamodb(url: str) -> RulesStore:
        from noncde.platform.adapters.dynamodb import DynamoRulesStore

        return DynamoRulesStore.from_url(url)

    return choose_adapter(
        f"{PREFIX}RULES_URL",
        config.rules_url,
        {**own, "file": lambda url: FileRulesStore(path_of(url)), "dynamodb": dynamodb},
    )


def _sql_platform(config: PlatformConfig, db: SqlDatabase, clock: Clock) -> Platform:
    record = SqlEventStore(db, clock)
    relays: list[Relay] = []
    readiness: dict[str, Callable[[], bool]] = {"platform_db": db.ping}

    def kinesis(url: str) -> EventStore:
        from noncde.platform.adapters.kinesis import KinesisEventStore

        store = KinesisEventStore.from_url(url, record)
        relays.append(store.relay())
        readiness["event_feed"] = store.ping
        return store

    events: EventStore = choose_adapter(
        f"{PREFIX}EVENT_STORE_URL",
        config.event_store_url,
        {**_sql(lambda _u: record), "kinesis": kinesis},
    )

    sql_jobs = SqlJobQueue(db, config.retry, clock)
    jobs_to_outbox = False

    def sqs(url: str) -> JobQueue:
        nonlocal jobs_to_outbox
        from noncde.platform.adapters.sqs import SqsJobQueue

        queue = SqsJobQueue.from_url(url, config.retry)
        relays.append(OutboxRelay(db, queue.publish, name="sqs-jobs", clock=clock))
        readiness["job_queue"] = queue.ping
        jobs_to_outbox = True
        return queue

    jobs: JobQueue = choose_adapter(
        f"{PREFIX}JOB_QUEUE_URL", config.job_queue_url, {**_sql(lambda _u: sql_jobs), "sqs": sqs}
    )

    idem_settings = {
        "retention_s": config.idempotency_retention_s,
        "lock_ttl_s": config.idempotency_lock_ttl_s,
    }

    def redis(url: str) -> IdempotencyStore:
        from noncde.platform.adapters.redis import RedisIdempotencyStore

        store = RedisIdempotencyStore.from_url(url, **idem_settings)
        readiness["idempotency"] = store.ping
        return store

    idempotency: IdempotencyStore = choose_adapter(
        f"{PREFIX}IDEMPOTENCY_URL",
        config.idempotency_url,
        {**_sql(lambda _u: SqlIdempotencyStore(db, clock=clock, **idem_settings)), "redis": redis},
    )
    rules = _rules(config, _sql(lambda _u: SqlRulesStore(db, clock)))

    def unit_of_work() -> UnitOfWork:
        return SqlUnitOfWork(
            db, idempotency=idempotency, jobs_to_outbox=jobs_to_outbox, clock=clock
        )

    return Platform(
        events=events,
        jobs=jobs,
        idempotency=idempotency,
        rules=rules,
        unit_of_work=unit_of_work,
        relays=tuple(relays),
        housekeeping=(idempotency.purge_expired, sql_jobs.purge_dedup),
        readiness=readiness,
        closers=(db.dispose,),
    )


def _memory_platform(config: PlatformConfig, clock: Clock) -> Platform:
    backend = MemoryBackend(clock=clock)
    events = MemoryEventStore(backend)
    jobs = MemoryJobQueue(backend, config.retry)
    idempotency = MemoryIdempotencyStore(
        backend,
        retention_s=config.idempotency_retention_s,
        lock_ttl_s=config.idempotency_lock_ttl_s,
    )
    rules = _rules(config, {"memory": lambda _u: MemoryRulesStore(backend)})
    return Platform(
        events=events,
        jobs=jobs,
        idempotency=idempotency,
        rules=rules,
        unit_of_work=lambda: MemoryUnitOfWork(backend, events, jobs, idempotency),
        housekeeping=(idempotency.purge_expired,),
        readiness={"platform_db": lambda: True},
    )
