"""noncde.workers adapters, AWS (boto3): reconciliation alerts to an SNS topic.

The endpoint, region and credentials come from boto3's usual chain (`AWS_ENDPOINT_URL` points
it at moto in tests). The alert carries counts and a report location, never card data or
secrets.
"""

from __future__ import annotations

import json
from typing import Any

from noncde.workers.adapters.files import FileAlertSink
from noncde.workers.domain.reconciliation import Alert


class AlertUnavailable(Exception):
    """The alert could not be published (it is tried again at the next run)."""


class SnsAlertSink:
    """`AlertSink` publishing to SNS, deduplicated through a local `FileAlertSink` record
    (which also logs it): published first, recorded after, so a failed publish is retried."""

    def __init__(self, topic_arn: str, record: FileAlertSink, *, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sns")
        self.client = client
        self.topic_arn = topic_arn
        self.record = record

    def raise_alert(self, alert: Alert) -> bool:
        if self.record.seen(alert.fingerprint):
            return False
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=alert.title[:99],
                Message=json.dumps(alert.to_dict(), sort_keys=True),
                MessageAttributes={
                    "day": {"DataType": "String", "StringValue": alert.day},
                    "kind": {"DataType": "String", "StringValue": "reconciliation"},
                },
            )
        except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "not sent"
            raise AlertUnavailable(f"SNS publish failed ({type(exc).__name__})") from None
        return self.record.raise_alert(alert)
