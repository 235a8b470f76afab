"""Non-CDE: the admin dashboard for support, finance, auditors and administrators."""
