"""Desired-state builders: pure functions from a resource's spec to the manifests (plain dicts) of its children.

Nothing here talks to Kubernetes, so every child can be unit-tested without a cluster; the kopf handlers only
apply what these functions return and read back what the children report.
"""
