"""Drive pod outcomes by hand where kwok's automatic lifecycle is not what a test needs.

kwok marks every pod Running and Ready, and completes pods owned by Jobs. A test that must see a worker
fail (or stay pending, or finish at a chosen moment) annotates the pod template with MANUAL_STATUS; kwok
then disregards those pods (--disregard-status-with-annotation-selector) and the test sets the status
itself through the status subresource, as a kubelet would.
"""

from __future__ import annotations

import json
import time
from typing import Any

from e2e.kube import Kube

MANUAL_STATUS_KEY = "quorum.dev/e2e-pod-status"
MANUAL_STATUS = {MANUAL_STATUS_KEY: "manual"}
MANUAL_STATUS_SELECTOR = f"{MANUAL_STATUS_KEY}=manual"


def finish_pod(kube: Kube, pod: dict[str, Any], *, succeeded: bool, exit_code: int | None = None) -> None:
    """Set a pod's phase to Succeeded or Failed with every container terminated (exit 0, or `exit_code`)."""
    code = (0 if succeeded else 1) if exit_code is None else exit_code
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses = [
        {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": now,
                    "finishedAt": now,
                }
            },
        }
        for container in pod["spec"]["containers"]
    ]
    patch = {"status": {"phase": "Succeeded" if succeeded else "Failed", "containerStatuses": statuses}}
    kube.kubectl(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "--subresource=status",
        "--type=merge",
        f"--patch={json.dumps(patch)}",
    )
