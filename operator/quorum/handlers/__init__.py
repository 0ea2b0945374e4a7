"""kopf handlers: thin wrappers that call one idempotent reconcile per kind (`synthesis.reconcile`,
`ensemble.reconcile`). Importing `quorum.handlers.register` registers them with kopf."""
