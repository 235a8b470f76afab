"""Non-CDE platform adapters, AWS DynamoDB: versioned risk rules (`dynamodb://<table>`).

Items: (pk = "rules#<set>", sk = 0) is the pointer `{active: N}`; (pk, sk = N) holds version
N. A publish is one TransactWriteItems: put version N+1 (must not exist) and move the pointer
(must still be N), so readers see the old set or the new one, never a mix, and of two racing
publishers exactly one wins. The hot-reload check is one consistent GetItem of the pointer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from noncde.platform.adapters.aws import (
    aws_client,
    aws_errors,
    error_code,
    url_name,
    url_query,
    wants_create,
)
from noncde.platform.domain import (
    JSON,
    BackendUnavailable,
    Clock,
    ConcurrencyConflict,
    InvalidArgument,
    RuleSet,
    from_micros,
    load_json,
    prepare_rules,
    to_micros,
)

# DynamoDB items are at most 400 KB; leave room for the keys and attributes.
MAX_RULES_BYTES = 350_000


def ensure_table(client: Any, name: str) -> None:
    """Create the rules table if missing (development and tests)."""
    with aws_errors():
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_table(
                TableName=name,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
        )


class DynamoRulesStore:
    """RulesStore on a DynamoDB table (pk S, sk N)."""

    def __init__(
        self, client: Any, table: str, rule_set: str = "risk", clock: Clock = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.pk = f"rules#{rule_set}"
        self.clock = clock

    @classmethod
    def from_url(cls, url: str) -> DynamoRulesStore:
        """`dynamodb://<table>[?set=risk][&create=1][&region=…][&endpoint=…]`."""
        client = aws_client("dynamodb", url)
        table = url_name(url)
        if wants_create(url):
            ensure_table(client, table)
        return cls(client, table, url_query(url, "set", "risk") or "risk")

    def _key(self, version: int) -> dict[str, Any]:
        return {"pk": {"S": self.pk}, "sk": {"N": str(version)}}

    def active_version(self) -> int:
        with aws_errors():
            item = self.client.get_item(
                TableName=self.table,
                Key=self._key(0),
                ConsistentRead=True,
                ProjectionExpression="active",
            ).get("Item")
        return 0 if item is None else int(item["active"]["N"])

    def active(self) -> RuleSet:
        with aws_errors():
            items = self.client.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk > :zero",
                ExpressionAttributeValues={":pk": {"S": self.pk}, ":zero": {"N": "0"}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            ).get("Items", [])
        return _rule_set(items[0]) if items else RuleSet.empty()

    def get(self, version: int) -> RuleSet | None:
        if version < 1:
            return None
        with aws_errors():
            item = self.client.get_item(
                TableName=self.table, Key=self._key(version), ConsistentRead=True
            ).get("Item")
        return None if item is None else _rule_set(item)

    def publish(self, rules: Sequence[JSON], *, expected_version: int | None = None) -> RuleSet:
        text = prepare_rules(rules, expected_version)
        if len(text.encode()) > MAX_RULES_BYTES:
            raise InvalidArgument(f"a rule set is at most {MAX_RULES_BYTES} bytes of JSON")
        for _ in range(5):
            current = self.active_version()
            if expected_version is not None and expected_version != current:
                raise ConcurrencyConflict("rules", expected_version, current)
            now = to_micros(self.clock())
            pointer_condition = "attribute_not_exists(pk)" if current == 0 else "active = :current"
            pointer_update: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._key(0),
                "UpdateExpression": "SET active = :next",
                "ConditionExpression": pointer_condition,
                "ExpressionAttributeValues": {":next": {"N": str(current + 1)}},
            }
            if current:
                pointer_update["ExpressionAttributeValues"][":current"] = {"N": str(current)}
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": {
                                    **self._key(current + 1),
                                    "rules": {"S": text},
                                    "published_at": {"N": str(now)},
                                },
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {"Update": pointer_update},
                    ]
                )
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise BackendUnavailable(f"AWS error {error_code(exc)}") from exc
                reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
                if expected_version is not None and "ConditionalCheckFailed" in reasons:
                    raise ConcurrencyConflict("rules", expected_version, None) from None
                # TransactionConflict: another transaction touched the items; try again.
                continue
            except BotoCoreError as exc:
                raise BackendUnavailable(f"AWS unavailable ({type(exc).__name__})") from exc
            return RuleSet(current + 1, tuple(load_json(text)), from_micros(now))
        raise ConcurrencyConflict("rules", expected_version, None)

    def ping(self) -> bool:
        try:
            with aws_errors():
                self.client.describe_table(TableName=self.table)
            return True
        except Exception:  # noqa: BLE001 - readiness: any failure is "not ready"
            return False


def _rule_set(item: dict[str, Any]) -> RuleSet:
    return RuleSet(
        int(item["sk"]["N"]),
        tuple(load_json(item["rules"]["S"])),
        from_micros(int(item["published_at"]["N"])),
    )
