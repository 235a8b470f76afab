"""Non-CDE platform: the command line (`python -m noncde.platform.app …`): create the schema,
run the relays, and inspect or replay the job queue's dead letters."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict
from typing import Any

from fincore.logs import configure_logging, get_logger
from noncde.platform.bootstrap import build_platform
from noncde.platform.service import run_background


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noncde.platform.app")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-schema", help="create the platform tables (idempotent)")
    relay = commands.add_parser("relay", help="publish the outbox and the event feed")
    relay.add_argument("--once", action="store_true", help="publish what is due, then exit")
    commands.add_parser("counts", help="job queue gauges as JSON")
    dead = commands.add_parser("dead-letters", help="list dead-lettered jobs (JSON lines)")
    dead.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="put dead letters back on the queue")
    replay.add_argument("job_ids", nargs="*", help="job ids (none: use --all)")
    replay.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)

    configure_logging("platform", stream=sys.stderr, to_file=args.command == "relay")
    platform = build_platform()
    try:
        if args.command == "init-schema":
            print("platform schema ready")
        elif args.command == "relay":
            if args.once:
                print(_json({r.name: r.run_once() for r in platform.relays}))
            else:
                stop = threading.Event()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stop.set())
                get_logger("platform").info(
                    "relay started", relays=[r.name for r in platform.relays]
                )
                run_background(platform, stop)
        elif args.command == "counts":
            print(_json(asdict(platform.jobs.counts())))
        elif args.command == "dead-letters":
            for letter in platform.jobs.dead_letters(args.limit):
                print(_json(asdict(letter)))
        elif args.command == "replay":
            if not args.job_ids and not args.all:
                parser.error("name job ids or pass --all")
            count = platform.jobs.replay(None if args.all else args.job_ids)
            print(_json({"replayed": count}))
    finally:
        platform.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
