"""Drill: `--backend ray --address` against a Ray cluster of two nodes (two raylets on this machine).

    python benchmarks/ray_two_nodes.py [STUDY] [--cpus-per-node 1] [--out runs/ray_two_nodes]

Starts a two-node cluster with `ray.cluster_utils.Cluster` (each node its own raylet, object store and
CPU count, as separate machines would have), runs the real CLI as a driver that joins it by address,
then prints which node ran how many trial groups, and whether the summary points equal those of a
local (`--backend local`) run of the same study. Not a test: it starts a cluster (about 20-40 s for the
smoke preset on 2 CPU cores). What it cannot show: a network between machines, a shared data cache
(every node here shares this machine's disk).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path


def run_cli(args: list[str]) -> tuple[int, float, str]:
    t = time.perf_counter()
    p = subprocess.run(["scalinglab", "run", *args, "--no-progress"], capture_output=True, text=True)
    return p.returncode, time.perf_counter() - t, p.stderr


def points(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["points"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", nargs="?", default="smoke")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--out", default="runs/ray_two_nodes")
    a = ap.parse_args(argv)
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_tasks

    base = Path(a.out)
    shutil.rmtree(base, ignore_errors=True)
    code, t_local, err = run_cli([a.study, "--out", str(base / "local")])
    assert code == 0, err

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": a.cpus_per_node})
    cluster.add_node(num_cpus=a.cpus_per_node)
    cluster.wait_for_nodes()
    try:
        code, t_ray, err = run_cli(
            [a.study, "--backend", "ray", "--address", cluster.address, "--out", str(base / "ray")]
        )
        assert code == 0, err
        ray.init(address=cluster.address, logging_level="ERROR")
        nodes = {n["NodeID"]: n for n in ray.nodes()}
        done = list_tasks(filters=[("state", "=", "FINISHED")], limit=10000)
        per_node = Counter(t.node_id for t in done if t.name == "scalinglab_group")
        ray.shutdown()
    finally:
        cluster.shutdown()

    print(
        f"study {a.study}: local run {t_local:.1f} s; two-node Ray run {t_ray:.1f} s "
        f"({a.cpus_per_node} CPU per node; includes the driver joining the cluster)"
    )
    for nid in nodes:
        print(f"  node {nid[:12]}: {per_node.get(nid, 0)} trial groups")
    same = points(base / "local") == points(base / "ray")
    print(f"summary points equal to the local run's: {same}")
    return 0 if same and len([n for n in per_node.values() if n]) == 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
