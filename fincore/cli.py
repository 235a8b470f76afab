"""The `fincore` command: run, demo, reset, sweep, pki, and `audit` for auditors."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence

from fincore.runner import COMPONENTS, Plan, available, default_ports, running
from fincore.settings import var_dir


def _plan(args: argparse.Namespace) -> Plan:
    return Plan(
        var_dir=var_dir(),
        ports=default_ports(args.port_base),
        environment=os.environ.get("FINCORE_ENV", "development"),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from fincore.seed import SEEDED_BY, SeedError, describe, ensure_seed

    plan = _plan(args)
    names = available(args.only.split(",") if args.only else None)
    if not names:
        print("nothing to run: no component exists yet")
        return 1
    seed = None
    if not args.no_seed and set(SEEDED_BY) <= set(names):
        try:
            seed = ensure_seed(plan)  # first run: two merchants and the staff logins
        except SeedError as exc:
            print(f"seeding the demo data failed: {exc}", file=sys.stderr)
            return 1
    try:
        with running(plan, names) as runner:
            print("\nFinCore is running (Ctrl-C stops everything):")
            for name in names:
                spec = COMPONENTS[name]
                print(f"  {name:<14} {plan.url(name):<28} {spec.zone:<9} {spec.description}")
            print(f"  CA certificate: {plan.ca_file}  (curl --cacert {plan.ca_file} ...)")
            if seed is not None:
                print("\n" + describe(plan, seed), flush=True)
            while True:
                crashed = runner.failed()
                if crashed is not None:
                    print(f"{crashed.spec.name} exited with {crashed.process.returncode}; stopping")
                    return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    except RuntimeError as exc:
        print(f"start failed: {exc}", file=sys.stderr)
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from fincore.demo import run_demo

    return run_demo(_plan(args), verbose=args.verbose)


def cmd_reset(args: argparse.Namespace) -> int:
    target = var_dir()
    if not args.yes:
        print(f"this deletes {target}; pass --yes to confirm")
        return 1
    if target.exists():
        shutil.rmtree(target)
    print(f"removed {target}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from fincore.pan_sweep import main as sweep_main

    return int(sweep_main(args.rest))


def cmd_pki(args: argparse.Namespace) -> int:
    from fincore.pki import issue_service_credentials

    plan = _plan(args)
    for name, spec in COMPONENTS.items():
        if spec.identity or spec.tls:
            files = issue_service_credentials(plan.pki_dir, name, spec.zone)
            print(f"{name:<14} {files.spiffe_id:<48} {files.cert}")
    return 0


def _exec_module(module: str, rest: Sequence[str]) -> int:
    # A separate interpreter keeps fincore free of imports of the packages it fronts.
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])  # noqa: S606
    return 0  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sweep"]:
        # argparse.REMAINDER drops options placed before the first path ("sweep --json x"),
        # and a rejected option must not be echoed (it may be a canary): sweep parses its own.
        from fincore.pan_sweep import main as sweep_main

        return sweep_main(args_list[1:])
    parser = argparse.ArgumentParser(prog="fincore", description=__doc__)
    parser.add_argument("--port-base", type=int, default=None, help="put every port at BASE+n")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start every process in the foreground")
    run.add_argument("--only", help="comma-separated component names")
    run.add_argument("--no-seed", action="store_true", help="do not create the demo data")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="start everything, run the demo, print a summary, stop")
    demo.add_argument("-v", "--verbose", action="store_true", help="stream every process's log")
    demo.set_defaults(func=cmd_demo)

    reset = sub.add_parser("reset", help="wipe all local state under var/")
    reset.add_argument("--yes", action="store_true")
    reset.set_defaults(func=cmd_reset)

    sweep = sub.add_parser("sweep", help="PAN sweep of files, databases and Redis")
    sweep.add_argument("rest", nargs=argparse.REMAINDER)
    sweep.set_defaults(func=cmd_sweep)

    pki = sub.add_parser("pki", help="create the development CA and service credentials")
    pki.set_defaults(func=cmd_pki)

    audit = sub.add_parser("audit", help="the auditor's CLI (python -m audit)")
    audit.add_argument("rest", nargs=argparse.REMAINDER)
    audit.set_defaults(func=lambda a: _exec_module("audit", a.rest))

    args = parser.parse_args(args_list)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
