"""bench/load.py: a bounded load generator for the whole platform, and the checks after it.

A client of both zones over loopback only (it imports neither): `N` charges (default 2,000)
from `C` concurrent clients (default 32) across the three flows, against a platform it starts
itself with `fincore.runner.running` (free ports, a throw-away var folder, the demo merchants
of `fincore.seed`) or against one already running (`--var-dir` and `--url name=URL`):

- S2S: the raw-card merchant posts a card to the card ingress (`POST /v1/charges`);
- SDK: the SDK merchant charges a PSP token (`pm_…`) at the API; the tokens are made through
  the sandbox's API with its publishable key, as its browser library does, before the timed
  window;
- hosted: the SDK merchant opens a payment session at the API and the buyer pays it by posting
  the sandbox's hosted-page form (no browser); the PSP's webhook completes it.

Clients retry like a careful merchant: every retry of an order reuses its Idempotency-Key,
after a timeout, a lost connection, a 409 (the key is in flight), a 429 or a 5xx, with backoff,
for up to `retry_budget_s`. Some first attempts get a tiny read timeout on purpose (the request
runs, the client gives up and retries), and some orders are sent twice at once with one key.

Figures (bench/common.py `Report`, each beside a same-run baseline): accepted charges/s and the
API latency p50/p95/p99 of the charge-creating requests, beside the API's `/healthz` under the
same concurrency; completed (terminal) charges/s sustained, beside the sandbox's own rate of
confirmed PaymentIntents under the same concurrency.

Checks afterwards (exit 1 if any fails): every order answered, every retry named the same
object; the PSP holds exactly one payment per distinct key (PaymentIntents grouped by our
`metadata.reference`) and the API one charge per key; every charge terminal, or dead-lettered
with a reason; the PSP's amounts equal the charges'; the ledger balances and its PSP clearing
account grew by exactly the captured money; LedgerDB and PaymentDB equal a rebuild from zero;
the day's reconciliation over SFTP is clean; optionally (`--sweep`) a PAN sweep of every
non-CDE store and log and of the CDE's logs finds nothing.

    python -m bench.load [--quick] [--json] [--charges N] [--concurrency C] [--rate R]
                         [--mix s2s,sdk,hosted] [--seed S] [--sweep] [--keep]
                         [--var-dir DIR --url api=https://127.0.0.1:8200 ...]

The functions (`started_platform`, `attach`, `run_load`, `run_checks`) are what the chaos tests
(tests/chaos/) drive, so the load and the checks are written once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from bench.common import Report, percentile
from fincore.ids import random_token
from fincore.netutil import free_port
from fincore.runner import COMPONENTS, PROJECT_ROOT, Plan, Runner, available, default_ports, running
from fincore.seed import DemoSeed, cli_command, cli_env, ensure_seed, load_seed

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
FLOWS = ("s2s", "sdk", "hosted")
# Published test cards of the PSP sandbox (docs/psp-sandbox.md): (number, cvc).
CARDS_OK = (
    ("4242424242424242", "123"),
    ("4000056655665556", "123"),
    ("5555555555554444", "123"),
    ("2223003122003222", "123"),
    ("5200828282828210", "123"),
    ("5105105105105100", "123"),
    ("378282246310005", "1234"),
    ("6011111111111117", "123"),
)
CARDS_DECLINED = (
    ("4000000000000002", "123"),
    ("4000000000009995", "123"),
    ("4000000000009987", "123"),
)
# The merchant's own pages of a hosted session (nothing listens: the form's 303 is not followed).
SUCCESS_URL = "http://127.0.0.1:9/paid"
CANCEL_URL = "http://127.0.0.1:9/cart"
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


# ---------------------------------------------------------------- the target


@dataclass
class Target:
    """A running platform: where its processes listen, its demo merchants, and (when this
    module started it) the runner that owns its processes."""

    plan: Plan
    seed: DemoSeed
    runner: Runner | None = None
    owned: bool = False  # started here: nobody else writes to it

    def url(self, name: str) -> str:
        return self.plan.url(name)

    def _sandbox_credentials(self) -> dict[str, Any]:
        path = self.plan.var_dir / "psp-sandbox" / "credentials.json"
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return found

    @property
    def psp_secret_key(self) -> str:
        path = self.plan.var_dir / "psp-dev" / "secret_key"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        return str(self._sandbox_credentials()["secret_key"])

    @property
    def psp_publishable_key(self) -> str:
        return str(self._sandbox_credentials()["publishable_key"])

    @property
    def psp_admin_token(self) -> str:
        return str(self._sandbox_credentials()["admin_token"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.plan.ca_file))

    def cli(
        self, component: str, *args: str, timeout_s: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`component`'s operator command line, with its own settings (as the demo runs it)."""
        return subprocess.run(
            cli_command(component, args),
            env=cli_env(self.plan, component, actor="bench-load"),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def cli_json(self, component: str, *args: str) -> tuple[int, Any]:
        result = self.cli(component, *args)
        try:
            return result.returncode, json.loads(result.stdout)
        except ValueError:
            raise RuntimeError(
                f"{component} {' '.join(args)}: exit {result.returncode}, "
                f"{result.stderr.strip()[-400:]}"
            ) from None

    # ------------------------------------------------------------ the sandbox's admin API

    def sandbox_admin(self, method: str, path: str, body: Any = None) -> Any:
        answer = httpx.request(
            method,
            self.url("psp-sandbox") + path,
            json=body,
            headers={"Authorization": f"Bearer {self.psp_admin_token}"},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def add_fault(self, **fault: Any) -> Any:
        """Install a sandbox fault (docs/psp-sandbox.md, "Faults")."""
        return self.sandbox_admin("POST", "/_sandbox/faults", fault)

    def clear_faults(self) -> None:
        self.sandbox_admin("DELETE", "/_sandbox/faults")


def load_rules(target_plan: Plan) -> list[dict[str, Any]]:
    """The default risk rules without the per-card velocity limits: a load run charges a
    handful of published test cards thousands of times, which those rules exist to stop."""
    probe = subprocess.run(
        cli_command("api", ["admin", "rules", "defaults"]),
        env=cli_env(target_plan, "api", actor="bench-load"),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rules: list[dict[str, Any]] = json.loads(probe.stdout)
    return [r for r in rules if not (r.get("type") == "velocity" and r.get("scope") == "card")]


def publish_rules(plan: Plan, rules: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="fincore-load-rules-") as folder:
        path = Path(folder) / "rules.json"
        path.write_text(json.dumps(rules), encoding="utf-8")
        subprocess.run(
            cli_command("api", ["admin", "rules", "publish", str(path)]),
            env=cli_env(plan, "api", actor="bench-load"),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


@contextlib.contextmanager
def started_platform(
    var_dir: Path | None = None,
    *,
    out: TextIO | None = None,
    names: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Target]:
    """Every component on free loopback ports with a throw-away var folder (or `var_dir`),
    the demo merchants and load-friendly risk rules; stopped when the block ends. `env`: the
    environment the components' settings come from (default: this process's)."""
    with contextlib.ExitStack() as stack:
        if var_dir is None:
            var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fincore-load-")))
        plan = Plan(
            var_dir=var_dir / "var", ports={n: free_port() for n in [*COMPONENTS, "psp-sftp"]}
        )
        seed = ensure_seed(plan)
        publish_rules(plan, load_rules(plan))
        log = out or stack.enter_context((var_dir / "processes.log").open("w", encoding="utf-8"))
        runner = stack.enter_context(running(plan, list(names or available()), out=log, env=env))
        yield Target(plan, seed, runner, owned=True)


def attach(var_dir: Path, urls: dict[str, str]) -> Target:
    """A platform already running (`fincore run`): its var folder (demo data, credentials, the
    CLIs' settings) and ports (FINCORE_PORT_* or defaults, overridden by `urls`)."""
    ports = default_ports()
    for name, url in urls.items():
        if name not in ports:
            raise SystemExit(f"--url: unknown component {name!r}")
        port = urlsplit(url).port
        if port is None:
            raise SystemExit(f"--url {name}: give the port ({url})")
        ports[name] = port
    plan = Plan(var_dir=var_dir, ports=ports)
    seed = load_seed(plan)
    if seed is None:
        raise SystemExit(f"no demo data in {var_dir} (start it once with `fincore run`)")
    return Target(plan, seed)


# ---------------------------------------------------------------- the load


@dataclass
class LoadConfig:
    charges: int = 2000
    concurrency: int = 32
    mix: tuple[float, float, float] = (0.45, 0.35, 0.20)  # s2s, sdk, hosted
    decline_share: float = 0.04  # S2S and SDK orders with a declining test card
    hosted_retry_share: float = 0.1  # hosted buyers whose first card is declined
    timeout_share: float = 0.03  # first attempt with a read timeout of a few ms
    duplicate_share: float = 0.02  # sent twice at once with one key
    rate: float | None = None  # paced arrivals (orders/s); None: as fast as the clients go
    seed: int = field(default_factory=lambda: secrets.randbelow(1 << 30))
    request_timeout_s: float = 30.0
    retry_budget_s: float = 180.0
    settle_timeout_s: float = 900.0
    # Stop waiting once no order has settled for this long (a job leased by a killed worker
    # waits out its visibility timeout, 60 s by default, before another worker takes it).
    stall_s: float = 120.0
    baselines: bool = True


@dataclass
class Order:
    """One thing a merchant wants done: one Idempotency-Key."""

    index: int
    flow: str
    key: str
    amount: int
    currency: str
    card: tuple[str, str] | None = None  # s2s and hosted: (number, cvc)
    token: str | None = None  # sdk
    decline: bool = False
    first_card_declined: bool = False  # hosted
    inject_timeout: bool = False
    duplicate: bool = False
    # what happened
    ids: set[str] = field(default_factory=set)  # every id an answer named
    charge_id: str | None = None
    session_id: str | None = None
    page: str | None = None  # hosted: the PSP's checkout page
    attempts: int = 0
    timeouts: int = 0
    retried: Counter[int] = field(default_factory=Counter)
    accepted_at: float | None = None
    error: str | None = None
    status: str | None = None
    charge: dict[str, Any] | None = None

    @property
    def merchant(self) -> str:
        return "raw" if self.flow == "s2s" else "sdk"

    @property
    def reference(self) -> str | None:
        """Our reference at the PSP: the charge for S2S and SDK, the session for hosted."""
        return self.session_id if self.flow == "hosted" else self.charge_id


@dataclass
class LoadResult:
    run: str
    config: LoadConfig
    orders: list[Order]
    started: float  # wall clock (time.time) of the first request
    accepted_s: float  # first request to last acceptance
    settled_s: float  # first request to the last order settled (as polled)
    latencies: dict[str, list[float]]  # per flow: the charge-creating API requests, seconds
    completed_at: dict[str, float] = field(default_factory=dict)  # charge -> event time
    healthz: tuple[float, list[float]] | None = None  # (req/s, latencies) at the same C
    sandbox: float | None = None  # confirmed PaymentIntents/s at the same C
    before: dict[str, Any] = field(default_factory=dict)  # ledger and position before the run

    @property
    def accepted(self) -> list[Order]:
        return [o for o in self.orders if o.accepted_at is not None]

    @property
    def api_latencies(self) -> list[float]:
        return [x for flow in FLOWS for x in self.latencies.get(flow, [])]

    def completed_rate(self) -> float:
        """Terminal charges per second from the first request to the last terminal event
        (event times are whole seconds: the last one counts as its mid-second)."""
        if not self.completed_at:
            return 0.0
        span = max(self.completed_at.values()) + 0.5 - self.started
        return len(self.completed_at) / max(span, 1e-3)

    def summary(self) -> dict[str, Any]:
        flows = Counter(o.flow for o in self.orders)
        statuses = Counter(o.status or "unsettled" for o in self.orders)
        return {
            "run": self.run,
            "seed": self.config.seed,
            "orders": dict(flows),
            "accepted": len(self.accepted),
            "statuses": dict(statuses),
            "attempts": sum(o.attempts for o in self.orders),
            "client_timeouts": sum(o.timeouts for o in self.orders),
            "retried_statuses": dict(sum((o.retried for o in self.orders), Counter())),
            "duplicates_sent": sum(o.duplicate for o in self.orders),
            "accepted_s": round(self.accepted_s, 2),
            "settled_s": round(self.settled_s, 2),
        }


def plan_orders(config: LoadConfig, run: str, rng: random.Random) -> list[Order]:
    weights = list(config.mix)
    orders = []
    for index in range(config.charges):
        flow = rng.choices(FLOWS, weights)[0]
        decline = flow != "hosted" and rng.random() < config.decline_share
        order = Order(
            index=index,
            flow=flow,
            key=f"load-{run}-{flow}-{index:05d}",
            amount=rng.randint(100, 50_000),
            currency=rng.choice(("usd", "eur")),
            decline=decline,
            first_card_declined=flow == "hosted" and rng.random() < config.hosted_retry_share,
            inject_timeout=rng.random() < config.timeout_share,
            duplicate=rng.random() < config.duplicate_share,
        )
        if flow != "sdk":
            order.card = rng.choice(CARDS_DECLINED if decline else CARDS_OK)
        orders.append(order)
    return orders


class Driver:
    """The clients: asyncio tasks with keep-alive connections to the ingress, the API and the
    sandbox (TLS with the run's CA for the first two)."""

    def __init__(self, target: Target, config: LoadConfig, rng: random.Random) -> None:
        self.target = target
        self.config = config
        self.rng = rng
        limits = httpx.Limits(
            max_connections=config.concurrency * 3, max_keepalive_connections=config.concurrency * 2
        )
        timeout = httpx.Timeout(config.request_timeout_s)
        context = target.ssl_context()
        self.fincore = httpx.AsyncClient(verify=context, timeout=timeout, limits=limits)
        self.sandbox = httpx.AsyncClient(timeout=timeout, limits=limits)
        self.latencies: dict[str, list[float]] = defaultdict(list)

    async def close(self) -> None:
        await self.fincore.aclose()
        await self.sandbox.aclose()

    def headers(self, order: Order) -> dict[str, str]:
        merchant = self.target.seed.raw if order.merchant == "raw" else self.target.seed.sdk
        return {"Authorization": f"Bearer {merchant.secret_key}", "Idempotency-Key": order.key}

    async def send(
        self,
        client: httpx.AsyncClient,
        url: str,
        order: Order,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        measured: bool = False,
        final: frozenset[int] = frozenset(),
        inject: bool = False,
    ) -> httpx.Response | None:
        """POST until a final answer (anything but a retryable status, or one in `final`),
        reusing the same headers (the Idempotency-Key); None if the retry budget ran out
        without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_budget_s
        delay = 0.05
        attempt = 0
        answer: httpx.Response | None = None
        while True:
            attempt += 1
            order.attempts += 1
            timeout: httpx.Timeout | None = None
            if inject and attempt == 1:
                # The request is sent and runs; the client stops waiting after a few ms.
                timeout = httpx.Timeout(
                    self.config.request_timeout_s, read=self.rng.uniform(0.002, 0.03)
                )
            started = time.perf_counter()
            try:
                answer = await client.post(
                    url,
                    json=json_body,
                    data=form,
                    headers=headers,
                    timeout=timeout or httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TimeoutException:
                order.timeouts += 1
                answer = None
            except httpx.TransportError as exc:
                order.retried[0] += 1
                order.error = type(exc).__name__
                answer = None
            else:
                if measured:
                    self.latencies[order.flow].append(time.perf_counter() - started)
                if answer.status_code in final or answer.status_code not in RETRY_STATUSES:
                    return answer
                order.retried[answer.status_code] += 1
            if loop.time() > deadline:
                return answer
            await asyncio.sleep(delay * (0.5 + self.rng.random() / 2))
            delay = min(delay * 2, 2.0)

    async def post_once_or_twice(
        self, order: Order, url: str, json_body: Any, client: httpx.AsyncClient
    ) -> list[httpx.Response | None]:
        """The order's charge-creating request; a duplicate order sends it twice at once."""
        send = self.send(
            client,
            url,
            order,
            json_body=json_body,
            headers=self.headers(order),
            measured=True,
            inject=order.inject_timeout,
        )
        if not order.duplicate:
            return [await send]
        twin = self.send(
            client, url, order, json_body=json_body, headers=self.headers(order), measured=True
        )
        return list(await asyncio.gather(send, twin))

    def take_ids(
        self, order: Order, answers: list[httpx.Response | None], ok: set[int]
    ) -> str | None:
        """The object id the answers name (every answer must name the same one)."""
        for answer in answers:
            if answer is None:
                order.error = order.error or "no answer within the retry budget"
                return None
            if answer.status_code not in ok:
                order.error = f"{answer.status_code} {answer.text[:200]}"
                return None
            body = answer.json()
            named = body.get("id") or (body.get("error") or {}).get("charge")
            if not named:
                order.error = f"{answer.status_code} without an id"
                return None
            order.ids.add(str(named))
        return next(iter(order.ids)) if len(order.ids) == 1 else None

    async def charge(self, order: Order) -> None:
        metadata = {"load_run": order.key.split("-")[1], "order": str(order.index)}
        body: dict[str, Any] = {
            "amount": order.amount,
            "currency": order.currency,
            "description": f"load order {order.index}",
            "metadata": metadata,
        }
        if order.flow == "s2s":
            assert order.card is not None
            number, cvc = order.card
            body["payment_method"] = {
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc},
            }
            url = self.target.url("ingress") + "/v1/charges"
        else:
            body["payment_method"] = {"type": "psp_token", "token": order.token}
            url = self.target.url("api") + "/v1/charges"
        answers = await self.post_once_or_twice(order, url, body, self.fincore)
        # 402: a risk block; the charge exists (failed) and is named in the error.
        order.charge_id = self.take_ids(order, answers, {201, 402})
        if order.charge_id is not None:
            order.accepted_at = time.time()

    async def hosted(self, order: Order) -> None:
        body = {
            "amount": order.amount,
            "currency": order.currency,
            "success_url": SUCCESS_URL,
            "cancel_url": CANCEL_URL,
            "metadata": {"load_run": order.key.split("-")[1], "order": str(order.index)},
        }
        url = self.target.url("api") + "/v1/payment_sessions"
        answers = await self.post_once_or_twice(order, url, body, self.fincore)
        order.session_id = self.take_ids(order, answers, {201})
        if order.session_id is None:
            return
        page = order.page = next(a for a in answers if a is not None).json()["url"]
        assert order.card is not None
        cards = [order.card]
        if order.first_card_declined:
            cards.insert(0, self.rng.choice(CARDS_DECLINED))
        for number, cvc in cards:
            form = {
                "email": "buyer@example.com",
                "number": number,
                "exp": "12 / 34",
                "cvc": cvc,
                "name": "Load Buyer",
            }
            # 303: paid (to the success URL); 409: already paid (a retry after a lost answer);
            # 402: declined, the form again (the buyer tries another card).
            answer = await self.send(
                self.sandbox,
                page,
                order,
                form=form,
                final=frozenset({303, 402, 409}),
                inject=order.inject_timeout and self.rng.random() < 0.5,
            )
            if answer is None:
                order.error = "the hosted page gave no answer within the retry budget"
                return
            if answer.status_code in (303, 409):
                order.accepted_at = time.time()
                return
            if answer.status_code != 402:
                order.error = f"hosted page {answer.status_code}"
                return
        order.error = "every card of the buyer was declined"

    async def run_order(self, order: Order) -> None:
        try:
            if order.flow == "hosted":
                await self.hosted(order)
            else:
                await self.charge(order)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            order.error = f"{type(exc).__name__}: {exc}"[:300]


async def _pool(
    items: Sequence[Any], worker: Callable[[Any], Awaitable[None]], concurrency: int
) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def drain() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await worker(item)

    await asyncio.gather(*(drain() for _ in range(max(1, concurrency))))


async def make_psp_tokens(
    target: Target, cards: Sequence[tuple[str, str]], concurrency: int
) -> list[str]:
    """PaymentMethods made with the sandbox's publishable key, as its browser SDK makes them."""
    tokens: list[str] = [""] * len(cards)
    auth = (target.psp_publishable_key, "")
    async with httpx.AsyncClient(
        base_url=target.url("psp-sandbox"), auth=auth, timeout=30
    ) as client:

        async def one(index: int) -> None:
            number, cvc = cards[index]
            for _ in range(20):
                answer = await client.post(
                    "/v1/payment_methods",
                    data={
                        "type": "card",
                        "card[number]": number,
                        "card[exp_month]": "12",
                        "card[exp_year]": "2034",
                        "card[cvc]": cvc,
                    },
                )
                if answer.status_code == 200:
                    tokens[index] = str(answer.json()["id"])
                    return
                await asyncio.sleep(0.2)
            answer.raise_for_status()

        await _pool(range(len(cards)), one, concurrency)
    return tokens


async def healthz_baseline(
    target: Target, requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """The API's /healthz under the same concurrency, over the same kind of client."""
    latencies: list[float] = []
    async with httpx.AsyncClient(
        verify=target.ssl_context(),
        timeout=30,
        limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency),
    ) as client:
        url = target.url("api") + "/healthz"

        async def one(_n: int) -> None:
            started = time.perf_counter()
            answer = await client.get(url)
            answer.raise_for_status()
            latencies.append(time.perf_counter() - started)

        await _pool(range(min(concurrency * 4, requests)), one, concurrency)  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await _pool(range(requests), one, concurrency)
        return requests / (time.perf_counter() - started), latencies


async def sandbox_baseline(target: Target, payments: int, concurrency: int) -> float:
    """Confirmed PaymentIntents/s at the sandbox alone, under the same concurrency: the PSP
    work of one charge. Authorization only (capture_method=manual): an uncaptured payment never
    reaches a settlement file, so the day still reconciles."""
    tokens = await make_psp_tokens(target, [CARDS_OK[0]] * payments, concurrency)
    async with httpx.AsyncClient(
        base_url=target.url("psp-sandbox"), auth=(target.psp_secret_key, ""), timeout=60
    ) as client:
        done = 0

        async def one(token: str) -> None:
            nonlocal done
            answer = await client.post(
                "/v1/payment_intents",
                data={
                    "amount": "1000",
                    "currency": "usd",
                    "payment_method": token,
                    "confirm": "true",
                    "capture_method": "manual",
                    "metadata[reference]": "bench-baseline",
                },
            )
            done += answer.status_code == 200

        started = time.perf_counter()
        await _pool(tokens, one, concurrency)
        return done / (time.perf_counter() - started)


def ledger_snapshot(target: Target) -> dict[str, Any]:
    """The trial balance's PSP clearing balance per currency (to compare before and after)."""
    _, trial = target.cli_json("ledger", "trial-balance", "--json")
    clearing = {
        a["currency"]: a["balance"] for a in trial["accounts"] if a["account"] == "psp:clearing"
    }
    return {"clearing": clearing, "transactions": trial["transactions"]}


def wait_lag_zero(target: Target, timeout_s: float = 300) -> None:
    """Until PaymentDB and LedgerDB have applied every event there is."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10) as client:
        for name in ("projectionist", "ledger"):
            while True:
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    if client.get(target.url(name) + "/lag").json()["lag_events"] == 0:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} still lags behind the event store")
                time.sleep(0.2)


def settled(order: Order) -> bool:
    """A hosted session complete with its charge; every charge terminal or dead-lettered."""
    return order.charge is not None and (
        order.status in TERMINAL or bool(order.charge.get("dead_lettered"))
    )


async def settle(target: Target, orders: Sequence[Order], config: LoadConfig) -> None:
    """Poll until every accepted order of `orders` is settled, or until the settle timeout,
    or until none has settled for `config.stall_s`."""
    client = httpx.AsyncClient(verify=target.ssl_context(), timeout=30)
    keys = {"raw": target.seed.raw.secret_key, "sdk": target.seed.sdk.secret_key}
    deadline = time.monotonic() + config.settle_timeout_s

    async def get(order: Order, path: str) -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            answer = await client.get(
                target.url("api") + path,
                headers={"Authorization": f"Bearer {keys[order.merchant]}"},
            )
            if answer.status_code == 200:
                found: dict[str, Any] = answer.json()
                return found
        return None

    async def check(order: Order) -> None:
        if order.flow == "hosted" and order.charge_id is None:
            session = await get(order, f"/v1/payment_sessions/{order.session_id}")
            if session is None or session.get("status") != "complete":
                return
            order.charge_id = session["charge"]
        charge = await get(order, f"/v1/charges/{order.charge_id}")
        if charge is None:
            return
        order.charge = charge
        order.status = charge["status"]

    try:
        pending = [o for o in orders if o.accepted_at is not None]
        progress = time.monotonic()
        while pending and time.monotonic() < min(deadline, progress + config.stall_s):
            await _pool(pending, check, 8)
            left = [o for o in pending if not settled(o)]
            if len(left) < len(pending):
                progress = time.monotonic()
            pending = left
            if pending:
                await asyncio.sleep(0.5)
    finally:
        await client.aclose()


def completion_times(target: Target, result: LoadResult) -> dict[str, float]:
    """When each of our charges became terminal: the time of its first terminal event
    (`charge.captured`, `charge.failed` or `charge.canceled`), from the API's events list."""
    ours = {o.charge_id for o in result.orders if o.charge_id}
    found: dict[str, float] = {}
    since = int(result.started) - 1
    with httpx.Client(verify=target.ssl_context(), timeout=60) as client:
        for merchant in (target.seed.raw, target.seed.sdk):
            for kind in ("charge.captured", "charge.failed", "charge.canceled"):
                after: str | None = None
                while True:
                    params = {"type": kind, "limit": "100", "created[gte]": str(since)}
                    if after:
                        params["starting_after"] = after
                    page = client.get(
                        target.url("api") + "/v1/events",
                        params=params,
                        headers={"Authorization": f"Bearer {merchant.secret_key}"},
                    ).json()
                    for event in page["data"]:
                        charge_id = event["data"]["object"].get("charge_id")
                        if charge_id in ours:
                            at = float(event["created"])
                            found[charge_id] = min(at, found.get(charge_id, at))
                    if not page["has_more"]:
                        break
                    after = page["data"][-1]["id"]
    return found


async def _load(
    target: Target, config: LoadConfig, run: str, on_started: Callable[[], None] | None
) -> LoadResult:
    rng = random.Random(config.seed)
    orders = plan_orders(config, run, rng)
    sdk = [o for o in orders if o.flow == "sdk"]
    healthz = sandbox = None
    if config.baselines:
        healthz = await healthz_baseline(
            target, max(200, min(config.charges, 2000)), config.concurrency
        )
        sandbox = await sandbox_baseline(
            target, max(100, min(config.charges // 3, 600)), config.concurrency
        )
    # SDK tokens, made in advance (outside the timed window), one per order.
    cards = [rng.choice(CARDS_DECLINED if o.decline else CARDS_OK) for o in sdk]
    for order, token in zip(
        sdk, await make_psp_tokens(target, cards, config.concurrency), strict=True
    ):
        order.token = token
    driver = Driver(target, config, rng)
    started_wall = time.time()
    started = time.perf_counter()
    if on_started is not None:
        on_started()

    async def paced(order: Order) -> None:
        if config.rate:
            wait = started + order.index / config.rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        await driver.run_order(order)

    try:
        await _pool(orders, paced, config.concurrency)
    finally:
        await driver.close()
    accepted = [o.accepted_at for o in orders if o.accepted_at is not None]
    accepted_s = (max(accepted) - started_wall) if accepted else 0.0
    return LoadResult(
        run=run,
        config=config,
        orders=orders,
        started=started_wall,
        accepted_s=accepted_s,
        settled_s=0.0,
        latencies=dict(driver.latencies),
        healthz=healthz,
        sandbox=sandbox,
    )


def run_load(
    target: Target,
    config: LoadConfig,
    *,
    on_started: Callable[[], None] | None = None,
    settle_after: bool = True,
) -> LoadResult:
    """Run the load (baselines first when configured) until every order is answered; then,
    with `settle_after`, `finish` it. `on_started` is called as the first order goes out (the
    chaos tests start their disruptions there)."""
    wait_lag_zero(target)
    before = ledger_snapshot(target)
    run = random_token(8)
    result = asyncio.run(_load(target, config, run, on_started))
    result.before = before
    if settle_after:
        finish(target, result)
    return result


def finish(target: Target, result: LoadResult, orders: Sequence[Order] | None = None) -> None:
    """Wait until the orders (default: all) have settled, then read when each charge
    completed (after the read models have caught up)."""
    asyncio.run(settle(target, result.orders if orders is None else orders, result.config))
    result.settled_s = time.time() - result.started
    wait_lag_zero(target)
    result.completed_at = completion_times(target, result)


# ---------------------------------------------------------------- the checks


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


TERMINAL_CHECK = "every charge terminal or dead-lettered with a reason"
RECONCILIATION_CHECK = "reconciliation of the day is clean"
LEDGER_CHECK = "ledger balances, holds the captured money"
REBUILD_CHECKS = {
    "ledger": "LedgerDB equals a rebuild from zero",
    "payments": "PaymentDB equals a rebuild from zero",
}
SWEEP_CHECK = "PAN sweep (non-CDE stores and logs, CDE logs)"


def _psp_payments(target: Target, since: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    with httpx.Client(
        base_url=target.url("psp-sandbox"), auth=(target.psp_secret_key, ""), timeout=60
    ) as client:
        while True:
            params = {"limit": "100", "created[gte]": str(since)}
            if after:
                params["starting_after"] = after
            answer = client.get("/v1/payment_intents", params=params)
            answer.raise_for_status()
            page = answer.json()
            found += page["data"]
            if not page["has_more"]:
                return found
            after = page["data"][-1]["id"]


def _psp_search(target: Target, reference: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        target.url("psp-sandbox") + "/v1/payment_intents/search",
        params={"query": f"metadata['reference']:'{reference}'", "limit": "100"},
        auth=(target.psp_secret_key, ""),
        timeout=30,
    )
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def _api_list(
    target: Target, secret_key: str, path: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    with httpx.Client(verify=target.ssl_context(), timeout=60) as client:
        while True:
            query = dict(params, limit="100")
            if after:
                query["starting_after"] = after
            page = client.get(
                target.url("api") + path,
                params=query,
                headers={"Authorization": f"Bearer {secret_key}"},
            ).json()
            found += page["data"]
            if not page["has_more"]:
                return found
            after = page["data"][-1]["id"]


def check_answers(result: LoadResult) -> Check:
    bad = [o for o in result.orders if o.accepted_at is None]
    split = [o for o in result.orders if len(o.ids) > 1]
    detail = (
        f"{len(result.accepted)}/{len(result.orders)} orders accepted after "
        f"{sum(o.attempts for o in result.orders)} requests "
        f"({sum(o.timeouts for o in result.orders)} client timeouts, "
        f"{sum(sum(o.retried.values()) for o in result.orders)} retried answers/errors)"
    )
    if bad:
        detail += f"; not accepted: {[(o.key, o.error) for o in bad[:3]]}"
    if split:
        detail += f"; one key, several objects: {[(o.key, sorted(o.ids)) for o in split[:3]]}"
    return Check("every order answered, one object per key", not bad and not split, detail)


def check_psp(target: Target, result: LoadResult) -> Check:
    """Exactly one PSP payment per distinct key: PaymentIntents grouped by our reference."""
    payments = _psp_payments(target, int(result.started) - 2)
    by_reference: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payment in payments:
        reference = (payment.get("metadata") or {}).get("reference")
        if reference and reference != "bench-baseline":
            by_reference[reference].append(payment)
    problems = []
    keys = Counter(o.key for o in result.orders)
    problems += [f"key {k} planned twice" for k, n in keys.items() if n > 1]
    ours = set()
    for order in result.accepted:
        reference = order.reference
        if reference is None:
            problems.append(f"{order.key}: no reference")
            continue
        ours.add(reference)
        found = by_reference.get(reference, [])
        charge = order.charge or {}
        blocked = charge.get("failure_code") == "risk_blocked"
        dead = bool(charge.get("dead_lettered")) and order.status not in TERMINAL
        if len(found) > 1 or (blocked and found) or (not blocked and not dead and len(found) != 1):
            problems.append(f"{order.key} ({reference}): {len(found)} PSP payments")
            continue
        if found and order.status == "succeeded":
            received = found[0].get("amount_received")
            if received != charge.get("amount_captured"):
                captured = charge.get("amount_captured")
                problems.append(f"{reference}: PSP received {received}, charge captured {captured}")
        if found and order.status in ("succeeded", "failed"):
            psp_ok = found[0]["status"] == "succeeded"
            if psp_ok != (order.status == "succeeded"):
                problems.append(f"{reference}: PSP {found[0]['status']}, charge {order.status}")
    strangers = sorted(r for r in by_reference if r not in ours and r.startswith(("ch_", "ps_")))
    if strangers and target.owned:
        problems.append(
            f"{len(strangers)} PSP payments of references no answer named: {strangers[:3]}"
        )
    # Search by reference (what the gateway's lookups use) agrees with the list, on a sample.
    sample = random.Random(result.config.seed).sample(sorted(ours), min(10, len(ours)))
    for reference in sample:
        if len(_psp_search(target, reference)) != len(by_reference.get(reference, [])):
            problems.append(f"{reference}: the PSP's search disagrees with its list")
    held = sum(len(v) for r, v in by_reference.items() if r in ours)
    detail = (
        f"{len(payments)} PaymentIntents since the start, {held} for our {len(ours)} keys; "
        f"search spot-checked on {len(sample)}"
    )
    if strangers and not target.owned:
        detail += f" ({len(strangers)} of other clients)"
    if problems:
        detail += "; " + "; ".join(problems[:5])
    return Check("PSP: one payment per distinct key", not problems, detail)


def check_api_charges(target: Target, result: LoadResult) -> Check:
    """One charge per key at the API: the charges tagged with this run are exactly the ones
    the answers named (a second charge made under one key would be listed but never named)."""
    problems = []
    tagged: dict[str, list[str]] = defaultdict(list)
    since = str(int(result.started) - 2)
    for merchant in (target.seed.raw, target.seed.sdk):
        for charge in _api_list(
            target, merchant.secret_key, "/v1/charges", {"created[gte]": since}
        ):
            if (charge.get("metadata") or {}).get("load_run") == result.run:
                tagged[charge["metadata"]["order"]].append(charge["id"])
    # A hosted session's charge carries the session's metadata, so it is tagged too.
    expected = {str(o.index): o.charge_id for o in result.accepted}
    for order, ids in tagged.items():
        if len(ids) != 1 or expected.get(order) != ids[0]:
            problems.append(f"order {order}: charges {ids}, answered {expected.get(order)}")
    missing = sorted(set(expected) - set(tagged))
    if missing:
        problems.append(f"{len(missing)} answered charges not listed (e.g. order {missing[0]})")
    listed = sum(len(v) for v in tagged.values())
    detail = f"{listed} charges of this run listed for {len(expected)} keys"
    if problems:
        detail += "; " + "; ".join(problems[:5])
    return Check("API: one charge per key", not problems, detail)


def check_terminal(target: Target, result: LoadResult) -> Check:
    reasons: dict[str, str] = {}
    since = str(int(result.started) - 2)
    for merchant in (target.seed.raw, target.seed.sdk):
        for event in _api_list(
            target,
            merchant.secret_key,
            "/v1/events",
            {"type": "charge.dead_lettered", "created[gte]": since},
        ):
            data = event["data"]["object"]
            reasons[data["charge_id"]] = str(data.get("reason") or "")
    statuses: Counter[str] = Counter()
    problems = []
    for order in result.accepted:
        charge = order.charge
        if charge is None:
            what = (
                "session still open"
                if order.flow == "hosted" and not order.charge_id
                else "no charge"
            )
            problems.append(f"{order.key}: {what}")
            continue
        if order.status in TERMINAL:
            statuses[order.status] += 1
        elif charge.get("dead_lettered") and reasons.get(charge["id"]):
            statuses["dead-lettered"] += 1
        else:
            problems.append(
                f"{charge['id']}: {order.status}, dead letter reason {reasons.get(charge['id'])!r}"
            )
    detail = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    if problems:
        detail += f"; {len(problems)} not settled: " + "; ".join(problems[:4])
    return Check(TERMINAL_CHECK, not problems, detail)


def check_ledger(target: Target, result: LoadResult) -> Check:
    code, trial = target.cli_json("ledger", "trial-balance", "--json")
    after = {
        a["currency"]: a["balance"] for a in trial["accounts"] if a["account"] == "psp:clearing"
    }
    captured: Counter[str] = Counter()
    for order in result.accepted:
        if order.charge and order.status == "succeeded":
            captured[order.currency] += int(order.charge["amount_captured"]) - int(
                order.charge.get("amount_refunded") or 0
            )
    before = result.before.get("clearing", {})
    grown = {c: after.get(c, 0) - before.get(c, 0) for c in set(after) | set(before)}
    grown = {c: v for c, v in grown.items() if v}
    ok = code == 0 and trial["balanced"] and grown == {c: v for c, v in captured.items() if v}
    detail = (
        f"{'balanced' if trial['balanced'] else 'NOT balanced'} "
        f"({trial['transactions']} transactions); psp:clearing grew by "
        f"{dict(sorted(grown.items()))}, captured by this run {dict(sorted(captured.items()))}"
    )
    return Check(LEDGER_CHECK, ok, detail)


def check_rebuild(target: Target, kind: str) -> Check:
    code, report = target.cli_json("ledger", "verify", kind)
    tables = ", ".join(f"{t} {d.split(':')[0]}" for t, d in sorted(report["digest"].items()))
    ok = code == 0 and report["identical_to_live"]
    return Check(REBUILD_CHECKS[kind], ok, f"{report['events']} events replayed; rows: {tables}")


def check_reconciliation(target: Target) -> Check:
    today = datetime.now(UTC).date().isoformat()
    target.sandbox_admin("POST", f"/_sandbox/settlements/{today}")
    code, report = target.cli_json("reconciler", "reconcile", "--date", today, "--json")
    findings = sum(report["counts"].values())
    ok = code == 0 and report["clean"] and findings == 0
    source = report["source"].split(":")[0]
    detail = (
        f"{today}: {report['lines']} settlement lines over {source}, "
        f"{report['matched']} matched, {findings} findings"
    )
    if findings:
        detail += f" {report['counts']}"
    return Check(RECONCILIATION_CHECK, ok, detail)


def check_sweep(target: Target) -> Check:
    from fincore.demo import sweep_targets
    from fincore.pan_sweep import Sweeper

    sweeper = Sweeper([])
    targets = sweep_targets(target.plan)
    for path in targets:
        sweeper.target(path)
    findings = sweeper.findings
    errors = sweeper.result.errors
    stats = sweeper.result.stats
    detail = (
        f"{len(findings)} findings in {len(targets)} targets ({stats.get('files', 0)} files, "
        f"{stats.get('tables', 0)} tables, {stats.get('rows', 0)} rows)"
    )
    if findings:
        detail += f": {[f.as_dict() for f in findings[:2]]}"
    if errors:
        detail += f"; not swept: {errors[:2]}"
    return Check(SWEEP_CHECK, not findings and not errors, detail)


def run_checks(target: Target, result: LoadResult, *, sweep: bool = False) -> list[Check]:
    """Every check after a load run (the platform must be running, its faults cleared)."""
    checks = [check_answers(result)]
    checks.append(_guarded("PSP: one payment per distinct key", lambda: check_psp(target, result)))
    checks.append(_guarded("API: one charge per key", lambda: check_api_charges(target, result)))
    checks.append(_guarded(TERMINAL_CHECK, lambda: check_terminal(target, result)))
    # Reconcile first: it posts the day's fees to the ledger, which the rebuild must equal too.
    checks.append(_guarded(RECONCILIATION_CHECK, lambda: check_reconciliation(target)))
    with contextlib.suppress(TimeoutError):
        wait_lag_zero(target)
    checks.append(_guarded(LEDGER_CHECK, lambda: check_ledger(target, result)))
    checks.append(_guarded(REBUILD_CHECKS["ledger"], lambda: check_rebuild(target, "ledger")))
    checks.append(_guarded(REBUILD_CHECKS["payments"], lambda: check_rebuild(target, "payments")))
    if sweep:
        checks.append(_guarded(SWEEP_CHECK, lambda: check_sweep(target)))
    return checks


def _guarded(name: str, step: Callable[[], Check]) -> Check:
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - a check that cannot run has failed
        return Check(name, False, f"could not run: {type(exc).__name__}: {str(exc)[:300]}")


def checks_table(checks: Sequence[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.name:<{width}}  {'PASS' if c.ok else 'FAIL':<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


# ---------------------------------------------------------------- the figures


def report_figures(report: Report, result: LoadResult) -> None:
    c = result.config.concurrency
    api = result.api_latencies
    accepted = len(result.accepted)
    health_rate, health = result.healthz or (float("nan"), [])
    report.add(
        f"accepted charges/s ({accepted} orders, c={c}, 3 flows)",
        accepted / max(result.accepted_s, 1e-3),
        "charges/s",
        f"API /healthz req/s (c={c})",
        health_rate,
        p50_ms=percentile(api, 50) * 1000,
        p99_ms=percentile(api, 99) * 1000,
    )
    for q in (50, 95, 99):
        report.add(
            f"API latency p{q}, charge-creating requests",
            percentile(api, q) * 1000,
            "ms",
            f"API /healthz p{q} (c={c})",
            percentile(health, q) * 1000 if health else float("nan"),
        )
    report.add(
        "completed (terminal) charges/s, sustained",
        result.completed_rate(),
        "charges/s",
        f"sandbox alone: confirmed PaymentIntents/s (c={c})",
        result.sandbox or float("nan"),
    )


def _parse_mix(text: str) -> tuple[float, float, float]:
    parts = [float(x) for x in text.split(",")]
    if len(parts) != 3 or min(parts) < 0 or not sum(parts):
        raise argparse.ArgumentTypeError("--mix takes three weights: s2s,sdk,hosted")
    return parts[0], parts[1], parts[2]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--charges", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--rate", type=float, help="paced arrivals, orders/s (default: closed loop)"
    )
    parser.add_argument("--mix", type=_parse_mix, help="weights s2s,sdk,hosted (default 45,35,20)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sweep", action="store_true", help="also run a PAN sweep afterwards")
    parser.add_argument("--keep", type=Path, help="keep the started platform's var folder here")
    parser.add_argument("--var-dir", type=Path, help="a running platform's var folder")
    parser.add_argument(
        "--url", action="append", default=[], help="NAME=URL of a running component"
    )
    extra, _ = parser.parse_known_args(list(argv))
    report = Report("Load: charges through the whole platform (loopback)", list(argv))
    config = LoadConfig()
    if report.quick:
        config.charges, config.concurrency = 150, 16
    for name in ("charges", "concurrency", "rate", "mix", "seed"):
        if getattr(extra, name) is not None:
            setattr(config, name, getattr(extra, name))
    text = sys.stderr if report.args.json else sys.stdout

    def go(target: Target) -> tuple[LoadResult, list[Check]]:
        print(
            f"load: {config.charges} orders, c={config.concurrency}, seed {config.seed}, "
            f"platform {'started here' if target.owned else 'attached'} ({target.plan.var_dir})",
            file=text,
            flush=True,
        )
        result = run_load(target, config)
        return result, run_checks(target, result, sweep=extra.sweep)

    if extra.url or extra.var_dir:
        urls = dict(item.split("=", 1) for item in extra.url)
        result, checks = go(attach(extra.var_dir or PROJECT_ROOT / "var", urls))
    else:
        if extra.keep:
            extra.keep.mkdir(parents=True, exist_ok=True)
        with started_platform(extra.keep) as target:
            result, checks = go(target)
    report_figures(report, result)
    report.print_table()
    print(f"\nrun: {json.dumps(result.summary())}", file=text)
    print(checks_table(checks), file=text)
    failed = [c.name for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed", file=text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
