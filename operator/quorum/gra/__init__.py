"""GRA data synthesis (Generator · Reviewer · Adjudicator), as a library free of Kubernetes.

Entry points, used by the worker pod and by local mode alike:

- `GraConfig.from_spec(spec, name=..., base_dir=..., pvc_root=...)` / `GraConfig.load(path)`: plain config.
- `await run_shard(config, shard_index, endpoints, out_dir, progress=callback)`: run or resume one shard;
  `callback(stage, done, total, counts)` reports progress.
- `merge_shards(config, out_dir)`: after all shards are done, write dataset/rejected/manifest/report.
- `run_local(config, out_dir, ...)`: all shards in one process, then the merge (`quorum synth run --local`).

The names below are imported on first use (PEP 562): the operator reads light modules of this package
(`quorum.gra.progress`) and must not pull in the engine's numpy, pyarrow, faiss and jinja2, which its image
does not carry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quorum.gra.config import GraConfig
    from quorum.gra.gate import GateResult, Verdict, gate
    from quorum.gra.local import LocalRun, run_local
    from quorum.gra.merge import ShardsIncomplete, merge_shards
    from quorum.gra.seeds import BadSeedData, OnBadSeed
    from quorum.gra.shard import STAGES, ProgressCallback, ShardResult, run_shard
    from quorum.gra.store import FingerprintMismatch, reset_output
    from quorum.locations import UnsupportedUri

_EXPORTS = {
    "GraConfig": "quorum.gra.config",
    "GateResult": "quorum.gra.gate",
    "Verdict": "quorum.gra.gate",
    "gate": "quorum.gra.gate",
    "LocalRun": "quorum.gra.local",
    "run_local": "quorum.gra.local",
    "ShardsIncomplete": "quorum.gra.merge",
    "merge_shards": "quorum.gra.merge",
    "BadSeedData": "quorum.gra.seeds",
    "OnBadSeed": "quorum.gra.seeds",
    "STAGES": "quorum.gra.shard",
    "ProgressCallback": "quorum.gra.shard",
    "ShardResult": "quorum.gra.shard",
    "run_shard": "quorum.gra.shard",
    "FingerprintMismatch": "quorum.gra.store",
    "reset_output": "quorum.gra.store",
    "UnsupportedUri": "quorum.locations",
}

__all__ = [  # the keys of _EXPORTS, spelled out for tools that read `__all__` statically
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
