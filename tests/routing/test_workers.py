"""`quorum router serve --workers N`: N processes share the port, `/metrics` from any of them counts every
worker's requests, and a worker that dies takes the router down (the pod restarts whole)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from e2e.netutil import await_ok, free_ports
from quorum.llm.simulated import SimulatedBackend
from quorum.routing.metrics import PUBLISH_SECONDS, WINDOW_SECONDS
from quorum.routing.workers import run_workers
from tests.routing.test_cli_serve import manifest


def test_a_worker_that_exits_stops_the_others_and_its_status_is_the_routers(tmp_path: Path):
    marker = tmp_path / "first"

    def serve() -> None:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL)  # the first worker to get here fails at once
        except FileExistsError:
            time.sleep(60)  # the other serves until the parent's SIGTERM ends it
            return
        os.close(fd)
        raise SystemExit(3)

    started = time.monotonic()
    assert run_workers(2, serve) == 3
    assert time.monotonic() - started < 30


def requests_served(text: str) -> float:
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return sum(s.value for s in samples if s.name == "quorum_router_requests_total")


def test_workers_share_the_port_and_every_scrape_counts_all_of_their_requests(tmp_path: Path):
    sim = SimulatedBackend(models=["echo"])
    path = manifest(tmp_path, sim.start_in_thread())
    (port,) = free_ports(1)
    command = [sys.executable, "-m", "quorum.cli.main", "router", "serve", str(path), "--port", str(port)]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the workers' metrics directory goes
    server = subprocess.Popen(
        [*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
    )
    try:
        await_ok(f"http://127.0.0.1:{port}/readyz", server)
        body = {"model": "solo", "messages": [{"role": "user", "content": "hello"}]}
        (directory,) = tmp_path.glob("quorum-router-metrics-*")
        sent, deadline = 0, time.monotonic() + 60
        while len({f.stem.rsplit("_", 1)[1] for f in directory.glob("counter_*.db")}) < 2:
            assert time.monotonic() < deadline, "one worker served every connection"
            with httpx.Client() as client:  # a fresh connection each: the kernel spreads them over the workers
                assert client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).status_code == 200
            sent += 1
        time.sleep(PUBLISH_SECONDS * 1.5)  # every worker has published its backend figures since
        scrapes, texts = [], []
        for _ in range(6):
            with httpx.Client() as client:
                texts.append(client.get(f"http://127.0.0.1:{port}/metrics").text)
            scrapes.append(requests_served(texts[-1]))
        assert scrapes == [float(sent)] * 6
        gauges = {s.name: s.value for family in text_string_to_metric_families(texts[-1]) for s in family.samples}
        assert gauges["vllm:current_qps"] == sent / WINDOW_SECONDS  # both workers' calls in the window
        assert gauges["vllm:healthy_pods_total"] == 1 and gauges["quorum_router_backend_available"] == 1
        assert gauges["quorum_router_requests_in_flight"] == 0
        assert not any(name.startswith("quorum_router_worker_") for name in gauges)  # internal, merged away
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not directory.exists()
    finally:
        if server.poll() is None:
            server.kill()
        sim.stop_thread()
