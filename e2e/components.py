"""Command lines of the five components, and where each keeps its files.

The flags follow what kubeadm and kwokctl configure for a real cluster (RBAC + Node authorization, the
NodeRestriction admission plugin, signed service-account tokens, per-controller service-account credentials)
so behaviour under test matches production; only what needs a real host (kubelet, kube-proxy, CNI) is
replaced by kwok. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from e2e import pki as pkimod
from e2e.netutil import LOOPBACK, free_ports

CLUSTER_NAME = "quorum-e2e"
# Pod IPs kwok hands out. Nothing routes to them; they only fill status.podIP(s).
POD_CIDR = "10.244.0.1/16"
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> Ports:
        return cls(*free_ports(6))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Layout:
    """The files of one plane under its workdir."""

    workdir: Path

    @property
    def pki(self) -> pkimod.Pki:
        return pkimod.Pki(self.workdir / "pki")

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig: what people, tests and the operator use."""
        return self.workdir / "kubeconfig"

    def component_kubeconfig(self, name: str) -> Path:
        return self.workdir / "kubeconfigs" / f"{name}.kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.workdir / "etcd"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def run(self) -> Path:
        return self.workdir / "run"

    @property
    def state(self) -> Path:
        return self.workdir / "state.json"

    def cert_dir(self, name: str) -> Path:
        return self.workdir / "serving" / name


def etcd(bins: Path, layout: Layout, ports: Ports) -> list[str]:
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    return [
        str(bins / "etcd"),
        "--name=e2e",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=e2e={peer}",
        "--initial-cluster-state=new",
        # Throwaway data: skipping fsync keeps etcd from dominating a 2-core machine's I/O wait.
        "--unsafe-no-fsync",
        "--auto-compaction-retention=1",
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]


def apiserver(bins: Path, layout: Layout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        # The `kubernetes` Service's endpoints may not be loopback addresses, and nothing here could dial
        # them (no kube-proxy, no real pods), so the API server does not publish itself there.
        "--endpoint-reconciler-type=none",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={layout.cert_dir('kube-apiserver')}",
        f"--tls-cert-file={pki.server_cert}",
        f"--tls-private-key-file={pki.server_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={pkimod.SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--api-audiences=https://kubernetes.default.svc.cluster.local",
        # The aggregation layer, as kubeadm sets it up (controllers' delegated authn reads this CA too).
        f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={pkimod.FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
        f"--proxy-client-key-file={pki.front_proxy_client_key}",
        "--profiling=false",
        "--v=0",
    ]


def _delegated_auth(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager(bins: Path, layout: Layout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        str(bins / "kube-controller-manager"),
        *_delegated_auth(layout.component_kubeconfig("kube-controller-manager")),
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={layout.cert_dir('kube-controller-manager')}",
        f"--cluster-name={CLUSTER_NAME}",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.sa_key}",
        # Each controller acts as its own service account, as under kubeadm: RBAC gaps surface here too.
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={pkimod.SERVICE_CIDR}",
        "--controllers=*",
        # Plenty of API budget: tests create and garbage-collect objects in bursts.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--v=0",
    ]


def scheduler(bins: Path, layout: Layout, ports: Ports) -> list[str]:
    return [
        str(bins / "kube-scheduler"),
        *_delegated_auth(layout.component_kubeconfig("kube-scheduler")),
        f"--secure-port={ports.scheduler}",
        f"--cert-dir={layout.cert_dir('kube-scheduler')}",
        "--v=0",
    ]


def kwok(bins: Path, layout: Layout, ports: Ports, node_selector: str, manual_pods: str) -> list[str]:
    """`manual_pods`: an annotation selector for pods whose status kwok leaves to the test (e2e.pods)."""
    return [
        str(bins / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={bins / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={node_selector}",
        f"--server-address={LOOPBACK}:{ports.kwok}",
        f"--node-ip={LOOPBACK}",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=40",
        f"--disregard-status-with-annotation-selector={manual_pods}",
    ]
