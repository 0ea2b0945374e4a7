"""Quorum's end-to-end harness: a real local Kubernetes control plane for tests and development.

`python -m e2e.build` compiles the pinned control plane into ~/.cache/quorum/k8s/<version>/;
`python -m e2e.cluster up|down|status` runs one detached under .cache/cluster/; `e2e.fixtures` is the pytest
plugin that gives tests a session-wide plane and a namespace each.
"""
