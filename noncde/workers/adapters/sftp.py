"""noncde.workers adapters, SFTP (paramiko): the PSP's settlement files.

The server's host key must already be in the pinned known_hosts file: an unknown or changed key
is refused (`RejectPolicy`, never `AutoAddPolicy`), so a man in the middle cannot feed us a
forged settlement (PCI DSS 4.2.1: trusted keys only). Login is by private key only (no
password, no agent, no keys found lying around).
"""

from __future__ import annotations

import errno
from datetime import date
from pathlib import Path, PurePosixPath

import paramiko

from noncde.workers.domain.reconciliation import MAX_FILE_BYTES, SettlementUnavailable

FILE_NAME = "settlement-{day}.csv"


class SftpSettlementSource:
    """`SettlementSource` on an SFTP server (`sftp://user@host:port/folder`)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        *,
        key_file: Path,
        known_hosts: Path,
        folder: str = "/",
        timeout_s: float = 15.0,
    ) -> None:
        if not known_hosts.is_file():
            raise SettlementUnavailable(
                f"the pinned SFTP host keys file {known_hosts} does not exist"
            )
        if not key_file.is_file():
            raise SettlementUnavailable(f"the SFTP client key {key_file} does not exist")
        self.host = host
        self.port = port
        self.username = username
        self.key_file = key_file
        self.known_hosts = known_hosts
        self.folder = folder or "/"
        self.timeout_s = timeout_s

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{self.folder}"

    def fetch(self, day: date) -> bytes | None:
        path = str(PurePosixPath(self.folder) / FILE_NAME.format(day=day.isoformat()))
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                key_filename=str(self.key_file),
                look_for_keys=False,
                allow_agent=False,
                timeout=self.timeout_s,
                banner_timeout=self.timeout_s,
                auth_timeout=self.timeout_s,
            )
            sftp = client.open_sftp()
            try:
                sftp.get_channel().settimeout(self.timeout_s)  # type: ignore[union-attr]
                try:
                    with sftp.open(path, "rb") as handle:
                        data = handle.read(MAX_FILE_BYTES + 1)
                except OSError as exc:
                    if getattr(exc, "errno", None) == errno.ENOENT or isinstance(
                        exc, FileNotFoundError
                    ):
                        return None
                    raise
            finally:
                sftp.close()
        except paramiko.BadHostKeyException:
            raise SettlementUnavailable(
                f"the SFTP server {self.host}:{self.port} presented a host key that does not "
                "match the pinned one"
            ) from None
        except paramiko.SSHException as exc:
            # RejectPolicy refusing an unknown host key lands here too.
            raise SettlementUnavailable(f"SFTP refused: {type(exc).__name__}: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise SettlementUnavailable(
                f"SFTP server {self.host}:{self.port} unavailable ({type(exc).__name__})"
            ) from None
        finally:
            client.close()
        return bytes(data)
