"""Shared by both zones: structured JSON logging with card-data redaction.

Every process calls `configure_logging(component)` once. Records are JSON lines with a UTC
timestamp, written to stdout and to `var/log/<component>.log`. The `redact` processor runs in every
process over everything a line holds before it is rendered, except the timestamp and component
name this process adds afterwards (PCI DSS 3.3.1, 3.5.1: no card data in logs): it masks the
sensitive types, any card-like number in any field (also inside nested values and exception
text) and every value under a card-like key.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from fincore.cards import MIN_PAN_LENGTH, is_card_key, mask_card_numbers
from fincore.sensitive import SensitiveValue

REDACTED = "[REDACTED]"
_PLAIN_SCALARS = frozenset({bool, float, type(None)})
_MAX_DEPTH = 8


def _redact_value(value: Any, depth: int) -> Any:
    if isinstance(value, SensitiveValue):
        return repr(value)
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, bytes | bytearray):
        return mask_card_numbers(bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if -(10**12) < value < 10**12:  # fewer than 13 digits: cannot be a card number
            return value
        text = str(value)
        masked = mask_card_numbers(text)
        return value if masked == text else masked
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return _redact_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return mask_card_numbers(f"{type(value).__name__}: {value}")
    # Unknown objects are rendered by repr() later; mask what that would show.
    return mask_card_numbers(repr(value))


# Keys repeat from line to line; remember what each one needs (bounded).
_KEY_CACHE: dict[Any, tuple[str, bool]] = {}
_KEY_CACHE_MAX = 4096


def _key_info(key: Any) -> tuple[str, bool]:
    info = _KEY_CACHE.get(key)
    if info is None:
        key_text = mask_card_numbers(str(key))
        info = (key_text, is_card_key(key_text))
        if len(_KEY_CACHE) < _KEY_CACHE_MAX and isinstance(key, str) and key_text == key:
            _KEY_CACHE[key] = info
    return info


def _redact_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    clean: dict[Any, Any] = {}
    for key, value in mapping.items():
        key_text, card_key = _KEY_CACHE.get(key) or _key_info(key)
        kind = type(value)
        if card_key and value not in (None, ""):
            clean[key_text] = REDACTED
        elif (kind is str and len(value) < MIN_PAN_LENGTH) or kind in _PLAIN_SCALARS:
            # Fast path for most fields of most lines: too short to hold a card number.
            clean[key_text] = value
        elif kind is int and -(10**12) < value < 10**12:
            clean[key_text] = value
        else:
            clean[key_text] = _redact_value(value, depth)
    return clean


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask card data anywhere in the event (see module docstring)."""
    return _redact_mapping(event_dict, 0)


def redact_text(text: str) -> str:
    """Mask card-like numbers in free text (for places that do not log through structlog)."""
    return mask_card_numbers(text)


class _TeeWriter:
    """Writes each rendered line to stdout and to the component's log file (line-buffered)."""

    def __init__(self, stream: TextIO, path: Path | None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8", buffering=1)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def msg(self, message: str) -> None:
        with self._lock:
            if not self._stream.closed:  # a test's captured stream may be gone; keep the file
                self._stream.write(message + "\n")
                self._stream.flush()
            if self._file is not None:
                self._file.write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _TeeFactory:
    def __init__(self, writer: _TeeWriter) -> None:
        self._writer = writer

    def __call__(self, *args: Any) -> _TeeWriter:
        return self._writer


def _shared_processors(component: str) -> list[Processor]:
    def add_component(_l: WrappedLogger, _m: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("component", component)
        return event_dict

    # `redact` sees everything a caller or a request can put in a line; the timestamp and the
    # component name come from this process and are added after it (they cannot hold card data,
    # and checking a 27-character timestamp on every line is measurable on a hot path).
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        add_component,
    ]


_LINE_ENCODER = json.JSONEncoder(default=repr)


def _render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """structlog's `JSONRenderer(default=repr)`, with one encoder for every line instead of a
    new one per call (`json.dumps` builds one whenever it is given `default`)."""
    return _LINE_ENCODER.encode(event_dict)


class _RedactingFormatter(logging.Formatter):
    """For stdlib loggers (uvicorn, libraries): the same processors, then JSON."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self._formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(default=repr),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *_shared_processors(component),
            ],
        )

    def format(self, record: logging.LogRecord) -> str:
        return self._formatter.format(record)


class _WriterHandler(logging.Handler):
    def __init__(self, writer: _TeeWriter, component: str) -> None:
        super().__init__()
        self._writer = writer
        self.setFormatter(_RedactingFormatter(component))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:  # noqa: BLE001 - a logging failure must never break the caller
            self.handleError(record)


_current_writer: _TeeWriter | None = None
# What `log_info` needs of the configuration it was made with: processors, writer, INFO on?
_direct: tuple[list[Processor], _TeeWriter, bool] | None = None


def log_dir() -> Path:
    return Path(
        os.environ.get("FINCORE_LOG_DIR") or Path(os.environ.get("FINCORE_VAR_DIR", "var")) / "log"
    )


def configure_logging(
    component: str,
    *,
    level: str | None = None,
    stream: TextIO | None = None,
    to_file: bool = True,
) -> None:
    """Configure structlog and the stdlib root logger for this process (idempotent)."""
    level_name = (level or os.environ.get("FINCORE_LOG_LEVEL", "INFO")).upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    global _current_writer
    path = log_dir() / f"{component}.log" if to_file else None
    writer = _TeeWriter(stream or sys.stdout, path)
    if _current_writer is not None:
        # Reconfiguring (tests, CLIs) must not leak the previous log file's handle.
        _current_writer.close()
    _current_writer = writer
    processors: list[Processor] = [*_shared_processors(component), _render_json]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_TeeFactory(writer),
        cache_logger_on_first_use=False,
    )
    global _direct
    _direct = (processors, writer, numeric <= logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_WriterHandler(writer, component))
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True


def reset_logging() -> None:
    """Undo `configure_logging` (tests): structlog defaults, no handlers, files closed."""
    global _current_writer, _direct
    _direct = None
    if _current_writer is not None:
        _current_writer.close()
        _current_writer = None
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _WriterHandler):
            root.removeHandler(handler)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    return structlog.get_logger(name, **initial)


def log_info(event: str, **fields: Any) -> None:
    """`get_logger().info(event, **fields)`, the same line through the same processors, without
    structlog's per-call logger set-up (~7 µs of ~22 per line here): for the access log, one
    line per request in every service. Falls back to structlog whenever it is configured by
    anything else (`structlog.testing.capture_logs`, a test's own configuration)."""
    direct = _direct
    if direct is None or structlog.get_config()["processors"] is not direct[0]:
        structlog.get_logger().info(event, **fields)
        return
    processors, writer, enabled = direct
    if not enabled:
        return
    event_dict: Any = fields
    event_dict["event"] = event
    try:
        for processor in processors:
            event_dict = processor(writer, "info", event_dict)
    except structlog.DropEvent:
        return
    writer.msg(event_dict)


def bind_request(**values: Any) -> None:
    """Bind request/correlation ids to every log line of this request (contextvars)."""
    structlog.contextvars.bind_contextvars(**values)


def clear_request() -> None:
    structlog.contextvars.clear_contextvars()


def redact_mapping(mapping: MutableMapping[str, Any]) -> dict[str, Any]:
    """Public helper: the redacted copy of a mapping (used for error reports)."""
    return _redact_mapping(mapping, 0)
