"""Shared pytest configuration: the e2e plugin provides control_plane, kubeconfig, namespace and kube."""

pytest_plugins = ["e2e.fixtures"]
