"""The glue between Kubernetes and the engines inside Quorum's pods (`quorum worker ...`).

The engines (`quorum.gra`, `quorum.routing`) know nothing of Kubernetes; this package reads the mounted
config, builds endpoints from it and from the pod's environment, reports progress to the API server with the
pod's own ServiceAccount, and writes the termination message the operator reads.
"""
