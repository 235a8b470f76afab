"""PSP sandbox: an SFTP server (asyncssh) that serves one folder read-only, as PSPs serve
settlement files. Key-based login only, bound to loopback.

Run: python -m psp_sandbox.adapters.sftp --root DIR --port P --host-key KEY --authorized-keys FILE
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import asyncssh


class _ReadOnlySFTP(asyncssh.SFTPServer):
    """Chrooted to the served folder; refuses every write (PCI DSS 7.2: least privilege)."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], root: str) -> None:
        super().__init__(chan, chroot=root.encode())

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise asyncssh.SFTPPermissionDenied("read-only")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & (
            asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
        ):
            raise asyncssh.SFTPPermissionDenied("read-only")
        return super().open(path, pflags, attrs)

    remove = rename = mkdir = rmdir = setstat = symlink = link = _refuse


async def serve(
    root: Path, port: int, host_key: Path, authorized_keys: Path, username: str
) -> None:
    def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return _ReadOnlySFTP(chan, str(root))

    class _Server(asyncssh.SSHServer):
        def begin_auth(self, user: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return False

        def validate_public_key(self, user: str, key: asyncssh.SSHKey) -> bool:
            return False  # handled by authorized_client_keys below

    server = await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        port,
        server_host_keys=[str(host_key)],
        authorized_client_keys=str(authorized_keys),
        sftp_factory=sftp_factory,
        allow_scp=False,
        process_factory=None,
    )
    print(f"sftp listening on 127.0.0.1:{port} serving {root} for {username}", flush=True)
    async with server:
        await server.wait_closed()


def ensure_keys(folder: Path) -> tuple[Path, Path, Path]:
    """Create (once) host and client keys; return (host key, client key, authorized_keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "sftp_host_key", folder / "sftp_client_key"
    authorized = folder / "sftp_authorized_keys"
    for path in (host_key, client_key):
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(str(path))
            os.chmod(path, 0o600)
            key.write_public_key(str(path) + ".pub")
    if not authorized.exists():
        authorized.write_bytes(Path(str(client_key) + ".pub").read_bytes())
    return host_key, client_key, authorized


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", type=Path, required=True)
    parser.add_argument("--authorized-keys", type=Path, required=True)
    parser.add_argument("--username", default="fincore")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.root, args.port, args.host_key, args.authorized_keys, args.username))


if __name__ == "__main__":
    main()
