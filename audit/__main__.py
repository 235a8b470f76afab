"""audit (both zones): `python -m audit` runs the auditor's CLI (audit.app)."""

from audit.app import main

raise SystemExit(main())
