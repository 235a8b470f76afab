"""audit adapter: evidence bundles as a plain folder (copy it, tar it, hand it over)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from audit.domain import AuditError


def _safe(relative: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise AuditError(f"bundle path {relative!r} is not a plain relative path")
    return path


class DirectoryBundleWriter:
    """Writes bundle files under a new (or empty) folder, 0600 files in 0700 folders."""

    def __init__(self, root: Path) -> None:
        if root.exists() and any(root.iterdir()):
            raise AuditError(f"{root} exists and is not empty; choose a new folder")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._root = root

    @property
    def location(self) -> str:
        return str(self._root)

    def put(self, path: str, data: bytes) -> None:
        target = self._root.joinpath(*_safe(path).parts)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


class DirectoryBundleReader:
    """Reads a bundle folder; never follows a path out of it."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise AuditError(f"{root} is not a bundle folder")
        self._root = root.resolve()

    def files(self) -> list[str]:
        return sorted(
            path.relative_to(self._root).as_posix()
            for path in self._root.rglob("*")
            if path.is_file()
        )

    def get(self, path: str) -> bytes:
        target = self._root.joinpath(*_safe(path).parts)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise AuditError(f"bundle file {path} is missing") from exc
