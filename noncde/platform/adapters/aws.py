"""Non-CDE platform adapters, AWS: what the SQS, Kinesis and DynamoDB adapters share (clients
from a port URL, error translation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from noncde.platform.domain import BackendUnavailable, InvalidArgument


def url_query(url: str, name: str, default: str | None = None) -> str | None:
    return parse_qs(urlsplit(url).query).get(name, [default])[0]


def aws_client(service: str, url: str) -> Any:
    """A boto3 client for `service`. `?region=` and `?endpoint=` in the URL override the
    environment (AWS_DEFAULT_REGION, AWS_ENDPOINT_URL), e.g. to reach moto in tests."""
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
    return boto3.client(
        service,
        region_name=url_query(url, "region"),
        endpoint_url=url_query(url, "endpoint"),
        config=config,
    )


def url_name(url: str) -> str:
    """The resource name in `scheme://name?...`."""
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/")
    if not name:
        raise InvalidArgument(f"{parts.scheme} URL needs a resource name: {parts.scheme}://<name>")
    return name


def wants_create(url: str) -> bool:
    """`?create=1`: create the resource when missing (development and tests; production
    resources come from Terraform)."""
    return (url_query(url, "create", "0") or "0").lower() in {"1", "true", "yes"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors() -> Iterator[None]:
    """botocore failures become BackendUnavailable (error code only, no request data)."""
    try:
        yield
    except ClientError as exc:
        raise BackendUnavailable(f"AWS error {error_code(exc) or 'ClientError'}") from exc
    except BotoCoreError as exc:
        raise BackendUnavailable(f"AWS unavailable ({type(exc).__name__})") from exc
