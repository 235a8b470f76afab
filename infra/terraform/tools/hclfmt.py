"""Infrastructure (both zones): align the `=` of consecutive attributes like `terraform fmt` does.

There is no terraform binary on the build machines, so this keeps the layout of the `.tf` files
consistent: within a run of consecutive single-level `name = value` lines at the same indentation,
the `=` signs line up. `--check` reports files that would change.

    .venv/bin/python infra/terraform/tools/hclfmt.py [--check] [paths...]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_ATTRIBUTE = re.compile(r'^(\s*)([A-Za-z_][\w-]*|"[^"]+")\s*=\s*(?!=)(.*)$')
TERRAFORM = Path(__file__).resolve().parents[1]


def format_text(text: str) -> str:
    """The text with every attribute run aligned."""
    lines = text.split("\n")
    out: list[str] = []
    run: list[tuple[str, str, str]] = []

    def flush() -> None:
        if run:
            width = max(len(key) for _, key, _ in run)
            out.extend(
                f"{indent}{key.ljust(width)} = {value}".rstrip() for indent, key, value in run
            )
            run.clear()

    depth = 0  # inside a heredoc or a multi-line string we never touch lines
    for line in lines:
        match = _ATTRIBUTE.match(line) if depth == 0 else None
        if match and (not run or run[0][0] == match.group(1)):
            run.append((match.group(1), match.group(2), match.group(3)))
        elif match:
            flush()
            run.append((match.group(1), match.group(2), match.group(3)))
        else:
            flush()
            out.append(line)
        if "<<" in line and re.search(r"<<-?([A-Z]+)\s*$", line):
            depth += 1
        elif depth and re.fullmatch(r"\s*[A-Z]+", line):
            depth -= 1
    flush()
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Format the given files or folders (default: all of infra/terraform)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="list files that would change; exit 1 if any"
    )
    parser.add_argument("paths", nargs="*", type=Path, default=[TERRAFORM])
    args = parser.parse_args(argv)
    files = sorted(
        {
            f
            for p in args.paths
            for f in ([p] if p.is_file() else p.rglob("*.tf"))
            if ".terraform" not in f.parts
        }
    )
    changed = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        formatted = format_text(text)
        if formatted != text:
            changed.append(file)
            if not args.check:
                file.write_text(formatted, encoding="utf-8")
    for file in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {file}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
