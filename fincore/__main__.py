"""`python -m fincore` is the `fincore` command."""

from fincore.cli import main

raise SystemExit(main())
