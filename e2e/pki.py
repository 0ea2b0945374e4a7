"""Certificates and keys for one plane, made with the openssl CLI.

openssl is on every machine image we run on, and the `cryptography` package is not in our lock, so the
harness shells out rather than adding a dependency. Keys are ECDSA P-256: a dozen of them take a fraction of a
second, which keeps `up` fast, and Kubernetes accepts them everywhere (TLS, client certs, ES256 tokens).
Each client identity mirrors a real cluster's, so RBAC decisions are the ones production makes.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
LEAF_DAYS = 365
# The first address of the Service CIDR belongs to the `kubernetes` Service; in-cluster clients dial it.
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
SERVER_SANS = (
    "IP:127.0.0.1",
    f"IP:{KUBERNETES_SERVICE_IP}",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Identity:
    """A client certificate's subject: CN is the user name, O entries are its groups."""

    name: str
    user: str
    groups: tuple[str, ...] = ()


# Who talks to the API server. Admin is what people and tests use; the rest are the components.
ADMIN = Identity("admin", "quorum-e2e-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("kube-controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("kube-scheduler", "system:kube-scheduler")
# kwok impersonates every fake kubelet at once (node status, leases, pod status across nodes), which the Node
# authorizer cannot express for a single identity, so like kwokctl it runs as a cluster admin.
KWOK = Identity("kwok", "kwok-controller", ("system:masters",))
CLIENTS = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, KWOK)
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def front_proxy_ca_cert(self) -> Path:
        """A second CA, as kubeadm makes: the API server trusts it only for requests it proxies to aggregated
        APIs, and components' delegated authentication reads it from extension-apiserver-authentication."""
        return self.directory / "front-proxy-ca.crt"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.directory / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.directory / "front-proxy-client.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        """Signs service-account tokens: the API server's TokenRequest and the controller manager's."""
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def cert(self, identity: Identity) -> Path:
        return self.directory / f"{identity.name}.crt"

    def key(self, identity: Identity) -> Path:
        return self.directory / f"{identity.name}.key"

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.server_cert, self.sa_pub, *map(self.cert, CLIENTS)))

    def generate(self) -> None:
        """Create the CA, the serving cert, one client cert per identity and the token signing key pair."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca("ca", "quorum-e2e-ca")
        self._ca("front-proxy-ca", "quorum-e2e-front-proxy-ca")
        self._leaf("apiserver", "/CN=kube-apiserver", "serverAuth", SERVER_SANS)
        for identity in CLIENTS:
            subject = "".join(f"/O={g}" for g in identity.groups) + f"/CN={identity.user}"
            self._leaf(identity.name, subject, "clientAuth", ())
        self._leaf(FRONT_PROXY_CLIENT, f"/CN={FRONT_PROXY_CLIENT}", "clientAuth", (), ca="front-proxy-ca")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.sa_key)
        _openssl("pkey", "-in", self.sa_key, "-pubout", "-out", self.sa_pub)
        for key in self.directory.glob("*.key"):
            key.chmod(0o600)

    def _ca(self, name: str, common_name: str) -> None:
        _openssl(
            *("req", "-x509", "-new", "-nodes", *_EC, "-subj", f"/CN={common_name}", "-days", str(CA_DAYS)),
            *("-keyout", self.directory / f"{name}.key", "-out", self.directory / f"{name}.crt"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"),
        )

    def _leaf(self, name: str, subject: str, usage: str, sans: tuple[str, ...], ca: str = "ca") -> None:
        key, csr, crt = (self.directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        extensions = self.directory / f"{name}.ext"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-nodes", *_EC, "-keyout", key, "-out", csr, "-subj", subject)
        _openssl(
            *("x509", "-req", "-in", csr, "-out", crt, "-days", str(LEAF_DAYS), "-extfile", extensions),
            *("-CA", self.directory / f"{ca}.crt", "-CAkey", self.directory / f"{ca}.key"),
            *("-set_serial", str(secrets.randbits(63))),
        )
        csr.unlink()
        extensions.unlink()


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args[:2]))} failed: {result.stderr.strip()}")
