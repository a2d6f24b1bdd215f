"""People's accounts: roles over the unit tree, passwords, sessions, the failed-login
limit and the audit log. ``gateway users ...`` manages them (:mod:`.commands`)."""
