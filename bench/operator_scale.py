"""Operator at scale: N small SynthesisJobs applied at once on the local control plane (issue 17's limits:
every job has all its children within 60 s, peak operator RSS ≤ 250 MB).

The plane is the e2e one (etcd, kube-apiserver, controller manager, scheduler and kwok on loopback, the CRDs
installed before the controllers start); the operator runs as `quorum operator run` in its own process,
watching one namespace, with its Prometheus metrics on a free port. Each job has one external `endpoint`
model, so no backend Deployment is needed and the worker Job is created by the first reconcile; its worker
pod then runs (and succeeds) under kwok, so the operator also sees the pod and Job events of a real run.

Figures, each with its ratio to the limit:
- seconds from the first apply until every job has every expected child (the children a running job has,
  derived from the builders: its declarative children and the worker Job; the merge Job only follows
  finished workers, so it is not waited for), and the per-job latency from its create to its last child;
- the operator's peak RSS (VmHWM of its process, sampled every `--interval` seconds);
- the reconcile rate from the operator's own metrics over that window: reconciles per second, errors, mean
  reconcile time; the operator's API requests per job, by method;
- where the machine's CPU went over the window: each plane process (etcd, kube-apiserver, controller
  manager, scheduler, kwok), the operator and this bench, and the rest of the machine.
The load average is printed beside them: the plane, the operator and this bench share the machine. The bench
sees the children through one metadata-only watch per child kind, so what it adds to the API server's work
is a stream of small events, not repeated LISTs.

    python bench/operator_scale.py [--n 1000] [--timeout 300] [--profile out.svg]

`--profile PATH` records the operator with py-spy during the window, wall-clock (idle threads included;
`--format` follows PATH's suffix: .svg flame graph, .txt collapsed stacks, .json speedscope). The plane and
the operator are stopped at the end whatever happens, and die with this process if it is killed.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_split, peak_rss_mb, rss_mb  # noqa: E402
from e2e import paths  # noqa: E402
from e2e.netutil import LOOPBACK, free_ports  # noqa: E402
from e2e.plane import ControlPlane  # noqa: E402
from e2e.procs import PidFile, spawn, stop  # noqa: E402
from quorum.api.resources import API_VERSION  # noqa: E402
from quorum.api.synthesis import SynthesisJobSpec  # noqa: E402
from quorum.builders.meta import LABEL_MANAGED_BY, LABEL_SYNTHESISJOB, MANAGED_BY, Owner  # noqa: E402
from quorum.handlers.kube import Kube, load_config  # noqa: E402
from quorum.handlers.plan import Key, key_of  # noqa: E402
from quorum.handlers.synthesis import desired  # noqa: E402

CHILDREN_LIMIT_S = 60.0
RSS_LIMIT_MB = 250.0
NAMESPACE = "scale"
KIND = "SynthesisJob"
MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


def job_manifest(name: str, namespace: str) -> dict[str, Any]:
    """The smallest valid SynthesisJob: one external endpoint (no backend to wait for), one shard, seeds from
    a ConfigMap and output to s3:// (nothing the scheduler waits on, so the worker pod runs under kwok)."""
    spec = {
        "models": [{"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}],
        "seeds": {"uri": "configmap://seeds/seeds.jsonl"},
        "generation": {"target": 8, "rounds": 1},
        "review": {"reviewers": 1, "allowSameModel": True},
        "output": {"uri": f"s3://bench/{name}/"},
        "workers": {"shards": 1, "parallelism": 1},
    }
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def expected_children(manifest: dict[str, Any]) -> set[Key]:
    """The children a running job has, by the builders the operator uses: every declarative child and the
    worker Job (created by the first reconcile when no backend has to become ready). Names depend on the
    owner's kind, name and namespace only, so a placeholder uid gives the real names."""
    metadata = manifest["metadata"]
    owner = Owner(kind=manifest["kind"], name=metadata["name"], namespace=metadata["namespace"], uid="expected")
    base, workers, _merge = desired(owner, SynthesisJobSpec.model_validate(manifest["spec"]))
    return {key_of(child) for child in [*base, workers]}


class Completion:
    """Which expected children of each job exist, by the watches' reports, and when each job first had them
    all (a job's completion time is kept once set: the bench asks when the children appeared)."""

    def __init__(self, expected: dict[str, set[Key]], label: str = LABEL_SYNTHESISJOB) -> None:
        self.expected, self.label = expected, label
        self.found: dict[str, set[Key]] = {}
        self.done: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, api_version: str, kind: str, item: dict[str, Any], present: bool, at: float) -> None:
        """One object of a watched kind, there (`present`) or deleted, at monotonic time `at`. The kind is
        given because metadata-only objects (PartialObjectMetadata) do not name it; objects without the
        parent label belong to no job."""
        metadata = item.get("metadata") or {}
        parent = (metadata.get("labels") or {}).get(self.label)
        if not parent:
            return
        key = (api_version, kind, metadata["name"])
        with self._lock:
            children = self.found.setdefault(parent, set())
            if not present:
                children.discard(key)
                return
            children.add(key)
            if parent not in self.done and parent in self.expected and self.expected[parent] <= children:
                self.done[parent] = at


def reconcile_totals(exposition: str, kind: str = KIND) -> dict[str, float]:
    """The reconcile counters of one kind from the operator's Prometheus text: `reconciles` (every result),
    `errors` (reconciles that ended in an error), `seconds` (time spent in them); and `requests`, the API
    requests the operator sent (all kinds; a figure the machine's load does not change), also by method
    (`requests GET`, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"reconciles": 0.0, "errors": 0.0, "seconds": 0.0, "requests": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "quorum_operator_api_requests_total":
                totals["requests"] += sample.value
                method = f"requests {sample.labels.get('method')}"
                totals[method] = totals.get(method, 0.0) + sample.value
            if sample.labels.get("kind") != kind:
                continue
            if sample.name == "quorum_operator_reconciles_total":
                totals["reconciles"] += sample.value
                totals["errors"] += sample.value if sample.labels.get("result") == "error" else 0.0
            elif sample.name == "quorum_operator_reconcile_duration_seconds_sum":
                totals["seconds"] += sample.value
    return totals


def apiserver_requests(exposition: str) -> dict[str, float]:
    """The API server's own count of the requests it served, by `VERB resource[/subresource]` (every client:
    the operator, kopf, the plane's controllers, kwok and this bench; watches are counted when they start)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            key = f"{labels.get('verb')} {labels.get('resource')}{sub}"
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def scrape_apiserver(kube: Kube) -> dict[str, float]:
    return apiserver_requests(kube.send("GET", "/metrics").decode())


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=10) as response:
        return reconcile_totals(response.read().decode())


def wait_for(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@contextmanager
def running_operator(
    plane: ControlPlane, namespace: str, metrics_port: int, health: int
) -> Iterator[subprocess.Popen[bytes]]:
    """`quorum operator run` in its own process (it dies with this one), ready once its liveness answers."""
    argv = [sys.executable, "-m", "quorum.cli.main", "operator", "run", "-n", namespace]
    argv += ["--kubeconfig", str(plane.kubeconfig), "--image", "quorum:bench"]
    argv += ["--metrics-port", str(metrics_port), "--metrics-address", LOOPBACK]
    argv += ["--liveness", f"http://{LOOPBACK}:{health}/healthz"]
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HTTPS_PROXY", "HTTP_PROXY")}
    process = spawn("operator", argv, plane.layout.run, plane.layout.logs, die_with_parent=True, env=env)
    try:
        wait_for(f"http://{LOOPBACK}:{health}/healthz", 120, process)
        wait_for(f"http://{LOOPBACK}:{metrics_port}/metrics", 30, process)
        yield process
    finally:
        stop(PidFile(plane.layout.run / "operator.pid"), reap=process.poll)


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy on the operator while the block runs (nothing when no output is asked for). Idle threads are
    sampled too: a reconcile is mostly a chain of API calls, so the wall-clock view is the one that says where
    a job's time goes (the CPU share is printed beside it)."""
    if output is None:
        yield
        return
    formats = {".svg": "flamegraph", ".txt": "raw", ".json": "speedscope"}
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--pid", str(pid), "--rate", "50", "--idle", "--nonblocking"]
    argv += ["--output", str(output), "--format", formats.get(output.suffix, "raw")]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(60)
        except subprocess.TimeoutExpired:
            recorder.kill()
        print(f"py-spy profile of the operator: {output if output.exists() else 'none written (py-spy failed)'}")


METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def follow_kind(
    kube: Kube, kind: tuple[str, str], namespace: str, completion: Completion, stop: threading.Event, seconds: int
) -> None:
    """One kind's children into `completion`: a metadata-only LIST, then a WATCH from its resourceVersion
    (names and labels only). The bench shares the machine with what it measures, so it sends one request per
    kind, not a LIST of every child each second; a broken stream or an expired version lists again."""
    while not stop.is_set():
        try:
            items, version = kube.list_with_version(*kind, namespace, MANAGED, accept=METADATA_LIST)
            for item in items:
                completion.seen(*kind, item, True, time.monotonic())
            while not stop.is_set():
                for event in kube.watch(*kind, namespace, MANAGED, version, seconds, accept=METADATA_ONE):
                    obj, change = event.get("object") or {}, event.get("type")
                    if change == "ERROR":
                        raise RuntimeError(f"watch of {kind[1]}: {obj.get('message')}")
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if change != "BOOKMARK":
                        completion.seen(*kind, obj, change != "DELETED", time.monotonic())
        except Exception as error:
            if not stop.is_set():
                print(f"  watch of {kind[1]} lists again after: {error}", flush=True)
                stop.wait(1.0)


def watch_children(
    kubeconfig: Path, namespace: str, kinds: Iterable[tuple[str, str]], completion: Completion, stop: threading.Event
) -> list[threading.Thread]:
    """A watching thread per child kind (daemons: they end with the plane or this process)."""
    kube = Kube(load_config(str(kubeconfig)))
    threads = [
        threading.Thread(
            target=follow_kind, args=(kube, kind, namespace, completion, stop, 3600), name=f"watch-{kind[1]}"
        )
        for kind in sorted(set(kinds))
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    return threads


@dataclass
class Run:
    """The measurement: when each job was created and first seen complete, and the operator's samples."""

    created: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    applied_s: float = 0.0
    peak_mb: float = 0.0
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    metrics_start: dict[str, float] = field(default_factory=dict)
    metrics_end: dict[str, float] = field(default_factory=dict)
    served_start: dict[str, float] = field(default_factory=dict)
    served_end: dict[str, float] = field(default_factory=dict)
    window_s: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def apply_all(kube: Kube, manifests: list[dict[str, Any]], run: Run, started: float) -> None:
    """Create every job from a few threads, as a `kubectl apply` of many files would; creation times are kept
    per job for the per-job latency."""

    def create(manifest: dict[str, Any]) -> None:
        kube.create(manifest)
        run.created[manifest["metadata"]["name"]] = time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, manifests))
    run.applied_s = time.monotonic() - started


def wait_for_children(completion: Completion, run: Run, pid: int, deadline: float, interval: float) -> None:
    """Until every job is complete (the watches say so) or the deadline passes, sampling the operator's
    memory every `interval` seconds."""
    last_print = 0.0
    while True:
        polled = time.monotonic()
        peak, now = peak_rss_mb(pid), rss_mb(pid)
        if math.isnan(peak):
            raise RuntimeError("the operator exited during the run")
        run.peak_mb = max(run.peak_mb, peak)
        done = len(completion.done)
        if polled - last_print >= 5:
            last_print = polled
            print(
                f"  {done}/{len(completion.expected)} jobs complete, {len(run.created)} created, operator RSS "
                f"{now:.0f} MB (peak {peak:.0f}), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if done == len(completion.expected) or polled >= deadline:
            return
        time.sleep(max(0.0, interval - (time.monotonic() - polled)))


def measure(plane: ControlPlane, args: argparse.Namespace) -> Run:
    """Operator up and idle, the children watched, then N jobs created at once."""
    kube = Kube(load_config(str(plane.kubeconfig)))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    manifests = [job_manifest(f"sj-{i:05d}", NAMESPACE) for i in range(args.n)]
    completion = Completion({m["metadata"]["name"]: expected_children(m) for m in manifests})
    kinds = {key[:2] for keys in completion.expected.values() for key in keys}
    metrics_port, health_port = free_ports(2)
    run, stop_watching = Run(), threading.Event()
    with running_operator(plane, NAMESPACE, metrics_port, health_port) as operator:
        print(f"operator running (pid {operator.pid}, {rss_mb(operator.pid):.0f} MB idle)")
        watch_children(plane.kubeconfig, NAMESPACE, kinds, completion, stop_watching)
        processes = {**plane.pids(), "operator": operator.pid, "bench (this process)": os.getpid()}
        run.metrics_start, run.cpu_start = scrape(metrics_port), cpu_split(processes)
        run.served_start = scrape_apiserver(kube)
        with profiled(operator.pid, args.profile), ThreadPoolExecutor(1) as applier:
            started = time.monotonic()
            applying = applier.submit(apply_all, kube, manifests, run, started)
            wait_for_children(completion, run, operator.pid, started + args.timeout, args.interval)
            applying.result()
            done = dict(completion.done)
            run.window_s = (max(done.values()) if len(done) == args.n else time.monotonic()) - started
            run.metrics_end, run.cpu_end = scrape(metrics_port), cpu_split(processes)
            run.served_end = scrape_apiserver(kube)
            run.peak_mb = max(run.peak_mb, peak_rss_mb(operator.pid))
            run.load = os.getloadavg()
            run.done = {job: at - started for job, at in done.items()}
            run.created = {job: at - started for job, at in run.created.items()}
        stop_watching.set()
    return run


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def report(run: Run, n: int) -> None:
    latencies = [max(0.0, run.done[job] - run.created.get(job, 0.0)) for job in run.done]
    reconciles = run.metrics_end["reconciles"] - run.metrics_start["reconciles"]
    errors = run.metrics_end["errors"] - run.metrics_start["errors"]
    busy = run.metrics_end["seconds"] - run.metrics_start["seconds"]
    cpu = run.cpu_end["operator"] - run.cpu_start["operator"]
    window = max(run.window_s, 1e-9)
    all_done = len(run.done) == n
    children = f"{run.window_s:.1f} s" if all_done else f"not all within {run.window_s:.0f} s ({len(run.done)}/{n})"
    print(f"\noperator at scale: {n} SynthesisJobs applied at once (create calls took {run.applied_s:.1f} s)")
    print(
        f"  every job has all its children: {children}; ×{run.window_s / CHILDREN_LIMIT_S:.2f} of the "
        f"{CHILDREN_LIMIT_S:.0f} s limit{'' if all_done else ' (at least)'}"
    )
    print(
        f"  per job, create → last child: p50 {percentile(latencies, 0.5):.1f} s, p99 "
        f"{percentile(latencies, 0.99):.1f} s, max {max(latencies, default=float('nan')):.1f} s"
    )
    print(
        f"  operator peak RSS (VmHWM): {run.peak_mb:.0f} MB; ×{run.peak_mb / RSS_LIMIT_MB:.2f} of {RSS_LIMIT_MB:.0f} MB"
    )
    print(
        f"  reconciles: {reconciles:.0f} in {window:.1f} s = {reconciles / window:.1f}/s "
        f"({reconciles / n:.1f} per job), {errors:.0f} errors, mean {busy / max(reconciles, 1) * 1000:.0f} ms each"
    )
    requests = run.metrics_end.get("requests", 0.0) - run.metrics_start.get("requests", 0.0)
    methods = ", ".join(
        f"{key.split()[1]} {(run.metrics_end[key] - run.metrics_start.get(key, 0.0)) / n:.2f}"
        for key in sorted(run.metrics_end)
        if key.startswith("requests ")
    )
    print(f"  operator API requests (kopf's own aside): {requests:.0f} = {requests / n:.1f} per job ({methods})")
    print(f"  operator CPU: {cpu:.1f} s = {cpu / window * 100:.0f}% of one core over the window")
    report_cpu(run, window)
    report_served(run, n)
    print(f"  load average at the end: {run.load[0]:.2f} {run.load[1]:.2f} {run.load[2]:.2f} ({os.cpu_count()} CPUs)")


def report_cpu(run: Run, window: float) -> None:
    """Where the machine's CPU went over the window: each process's seconds, its share of one core and of
    the machine's busy time; the rest is other work on the machine (shared with other users)."""
    spent = {name: run.cpu_end[name] - run.cpu_start.get(name, 0.0) for name in run.cpu_end}
    machine = max(spent.pop("machine"), 1e-9)
    print(f"  CPU over the window ({machine:.1f} s busy of {window * (os.cpu_count() or 1):.1f} s on all cores):")
    for name, seconds in [*sorted(spent.items(), key=lambda item: -item[1]), ("rest", machine - sum(spent.values()))]:
        print(f"    {name:24} {seconds:7.1f} s  {seconds / window * 100:4.0f}% of a core  {seconds / machine:4.0%}")


def report_served(run: Run, n: int, shown: int = 12) -> None:
    """The API server's requests over the window per job, the most frequent first: who asks for what (a PATCH
    of synthesisjobs without a subresource is kopf's own annotations; the operator patches only the status)."""
    served = {key: run.served_end[key] - run.served_start.get(key, 0.0) for key in run.served_end}
    served = {key: count for key, count in served.items() if count > 0}
    total = sum(served.values())
    top = sorted(served.items(), key=lambda item: -item[1])[:shown]
    print(f"  API server requests over the window, all clients: {total:.0f} = {total / n:.1f} per job; per job:")
    print("    " + ", ".join(f"{key} {count / n:.2f}" for key, count in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="SynthesisJobs applied at once")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every job's children")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples of the operator")
    parser.add_argument("--profile", type=Path, default=None, help="record the operator with py-spy into PATH")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    workdir = paths.state_root() / "bench" / f"operator-scale-{os.getpid()}"
    plane = ControlPlane(workdir, crd_dirs=[ROOT / "crds"])
    print(f"conditions: {os.cpu_count()} CPUs (shared; load average {os.getloadavg()[0]:.1f} at start), N={args.n}")
    try:
        plane.start()
        print(f"plane ready in {plane.timings['total']:.1f} s")
        run = measure(plane, args)
    except BaseException:
        print(f"operator log (tail):\n{plane.log_tail('operator')}", file=sys.stderr)
        raise
    finally:
        plane.stop(remove=True)
    report(run, args.n)


if __name__ == "__main__":
    main()
