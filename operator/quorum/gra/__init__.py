"""GRA data synthesis (Generator · Reviewer · Adjudicator), as a library free of Kubernetes.

Entry points, used by the worker pod and by local mode alike:

- `GraConfig.from_spec(spec, name=..., base_dir=..., pvc_root=...)` / `GraConfig.load(path)`: plain config.
- `await run_shard(config, shard_index, endpoints, out_dir, progress=callback)`: run or resume one shard;
  `callback(stage, done, total, counts)` reports progress.
- `merge_shards(config, out_dir)`: after all shards are done, write dataset/rejected/manifest/report.
- `run_local(config, out_dir, ...)`: all shards in one process, then the merge (`quorum synth run --local`).
"""

from quorum.gra.config import GraConfig
from quorum.gra.gate import GateResult, Verdict, gate
from quorum.gra.local import LocalRun, run_local
from quorum.gra.merge import ShardsIncomplete, merge_shards
from quorum.gra.seeds import BadSeedData, OnBadSeed
from quorum.gra.shard import STAGES, ProgressCallback, ShardResult, run_shard
from quorum.gra.store import FingerprintMismatch, reset_output
from quorum.locations import UnsupportedUri

__all__ = [
    "STAGES",
    "BadSeedData",
    "FingerprintMismatch",
    "GateResult",
    "GraConfig",
    "LocalRun",
    "OnBadSeed",
    "ProgressCallback",
    "ShardResult",
    "ShardsIncomplete",
    "UnsupportedUri",
    "Verdict",
    "gate",
    "merge_shards",
    "reset_output",
    "run_local",
    "run_shard",
]
