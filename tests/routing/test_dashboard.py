"""The Grafana dashboard shipped in the chart queries only metrics the router really exports.

The router serves every kind of request the panels describe (voted, passed through and streamed, a dead
backend and its fallback), then `/metrics` is scraped and every metric named in a panel query must be in it.
"""

from __future__ import annotations

import json
import re

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from quorum.llm.simulated import SimReply, SimulatedBackend
from tests.conftest import REPO
from tests.routing.conftest import router_spec, serving

DASHBOARD = REPO / "charts" / "quorum" / "files" / "dashboards" / "quorum-router.json"
METRIC = re.compile(r"\b(quorum_router_[a-z_]+|vllm:[a-z_]+)")


def queried_metrics(dashboard: dict) -> set[str]:
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert expressions and all(METRIC.search(e) for e in expressions)
    return {m for e in expressions for m in METRIC.findall(e)}


async def test_every_metric_the_dashboard_queries_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "quorum-router" and dashboard["panels"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"${datasource}"}
    async with SimulatedBackend(lambda _: SimReply(text="so it is \\boxed{4}")) as sim:
        spec = router_spec({"dead": "http://127.0.0.1:9/v1", "solo": sim.base_url})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            voted = await client.chat.completions.create(
                model="ensemble",
                messages=[{"role": "user", "content": "2+2?"}],
                extra_body={"quorum": {"task": "arithmetic"}},
            )
            stream = await client.chat.completions.create(
                model="solo",
                messages=[{"role": "user", "content": "2+2?"}],
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            [chunk async for chunk in stream]
            await client.close()
            async with httpx.AsyncClient() as http:
                scraped = (await http.get(router.base_url.removesuffix("/v1") + "/metrics")).text
    assert voted.model_extra["quorum"]["fallbacks"] == ["dead"] and voted.model_extra["quorum"]["agreement"] == 1.0
    families = list(text_string_to_metric_families(scraped))
    exported = {s.name for f in families for s in f.samples} | {f.name for f in families}
    missing = sorted(queried_metrics(dashboard) - exported)
    assert missing == []
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert samples[("quorum_router_vote_agreement_count", ())] == 1  # the voted request; the pass-through had no vote
    assert samples[("quorum_router_time_to_first_token_seconds_count", (("endpoint", "chat/completions"),))] == 2
    assert samples[("vllm:healthy_pods_total", (("server", "http://127.0.0.1:9/v1"),))] in (0, 1)
    assert samples[("quorum_router_completion_tokens_total", (("model", "solo"),))] > 0
