"""Benchmark: `eventlake serve` against a bare FastAPI + River endpoint, same model.

One command (installs Debian's ``hey`` load generator if it is missing):

    .venv/bin/python benchmarks/serving_http.py [--seconds 5] [--history 3000]

Set-up (not measured): see ``serving_setup.demo_lake``. Then, for 1 and 2 uvicorn
workers each, ``hey`` (on loopback, bounded by ``--seconds``) drives
(a) the baseline, ``benchmarks/bare_app.py``: a FastAPI endpoint that calls
    ``predict_one`` with the features in the request, and
(b) ``eventlake serve``: ``POST /models/eta/predict`` with the raw order events;
    online features, the champion (re-read every 2 s), the audit record of every
    prediction (written to the lake in the background), metrics.
Each at a fixed 200 requests/s (p50, p99) and flat out with 32 connections
(throughput, the ratio b/a), then with 10 and 100 events per request (how cost
grows with the request). Prints the servers' peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_setup import ROOT, demo_lake, own_peak_rss_mib, peak_rss_mib, start, stop

from features import OnlineFeatures
from ingest import EmbeddedBroker, free_port
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from orchestration.demo.definitions import ETA


def ensure_hey() -> str:
    found = shutil.which("hey")
    if found:
        return found
    print("installing Debian's `hey` load generator (apt-get)...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=False)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "hey"], check=True)
    return shutil.which("hey") or "hey"


def hey(url: str, body: dict, seconds: float, *, rate: int | None) -> dict[str, float]:
    """Run hey; return requests/s, p50 and p99 (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    conc = ["-c", "4", "-q", str(rate // 4)] if rate else ["-c", "32"]
    out = subprocess.run(
        [HEY, "-z", f"{seconds}s", *conc, "-m", "POST", "-T", "application/json", "-D", f.name,
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    assert codes and all(c == "200" for c, _ in codes), out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p = {q: float(m) * 1000 for q, m in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    if "99" not in p:  # hey prints no 99% under 100 responses: the slowest stands in
        p["99"] = float(re.search(r"Slowest:\s+([\d.]+)", out).group(1)) * 1000  # type: ignore[union-attr]
    return {"rps": rps, "p50": p["50"], "p99": p["99"]}


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server died at start"
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def bodies(lake: str, n: int) -> tuple[dict, dict]:
    """(eventlake body, bare body) for ``n`` recent orders."""
    src = Lake(lake).scan(ETA.feature_set.source).sort("_kafka_offset").tail(n).collect()
    fields = [c for c in ETA.feature_set.inputs if c in src.columns and not c.startswith("_")]
    events = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
        for r in src.select(fields).iter_rows(named=True)
    ]
    feats = OnlineFeatures.load(Lake(lake), ETA.feature_set).features(src)
    x = [
        {k: v for k, v in r.items() if v is not None}
        for r in feats.select(ETA.feature_names).with_columns(pl.col(pl.Boolean).cast(pl.Int8))
        .iter_rows(named=True)
    ]  # fmt: skip
    return {"events": events}, {"features": x}


def main() -> None:
    global HEY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--history", type=int, default=3000)
    args = ap.parse_args()
    HEY = ensure_hey()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bs, lake = broker.bootstrap_servers, os.path.join(tmp, "lake")
        with SchemaRegistryServer(SchemaStore.open(Lake(lake))) as registry:
            demo_lake(bs, lake, registry.url, args.history)
        env = {"EVENTLAKE_LAKE_ROOT": lake, "EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS": bs,
               "BENCH_LAKE": lake, "PYTHONPATH": str(ROOT)}  # fmt: skip
        for workers in (1, 2):
            for kind in ("bare", "eventlake"):
                port = free_port()
                if kind == "bare":
                    proc = start(["-m", "uvicorn", "benchmarks.bare_app:create", "--factory",
                                  "--port", str(port), "--workers", str(workers),
                                  "--log-level", "warning"], env, module=False)  # fmt: skip
                    url = f"http://127.0.0.1:{port}/predict"
                    ready = f"http://127.0.0.1:{port}/docs"
                else:
                    proc = start(["serve", "--port", str(port), "--workers", str(workers)], env)
                    url = f"http://127.0.0.1:{port}/models/eta/predict"
                    ready = f"http://127.0.0.1:{port}/ready"
                try:
                    wait_ready(ready, proc)
                    sizes = (1, 10, 100) if workers == 1 else (1,)
                    for n in sizes:
                        ours, bare = bodies(lake, n)
                        body = bare if kind == "bare" else ours
                        hey(url, body, 1.0, rate=None)  # warm-up
                        fixed = hey(url, body, args.seconds, rate=200) if n == 1 else None
                        flat = hey(url, body, args.seconds, rate=None)
                        rows.append((workers, kind, n, fixed, flat))
                        print(f"  {kind:<9} workers {workers} events/request {n:>3}: "
                              + (f"200 req/s p50 {fixed['p50']:.1f} ms p99 {fixed['p99']:.1f} ms; "
                                 if fixed else "")
                              + f"flat out {flat['rps']:,.0f} req/s "
                              f"(p50 {flat['p50']:.1f} ms, p99 {flat['p99']:.1f} ms)",
                              flush=True)  # fmt: skip
                    print(f"  {kind} peak RSS {peak_rss_mib(proc):,.0f} MiB", flush=True)
                finally:
                    stop(proc)
    print("\nsummary (b = eventlake, a = bare FastAPI + predict_one):")
    for workers in (1, 2):
        for n in (1, 10, 100):
            got = {k: flat for w, k, m, _, flat in rows if w == workers and m == n}
            if len(got) == 2:
                ratio = got["eventlake"]["rps"] / got["bare"]["rps"]
                ours, bare = got["eventlake"]["rps"], got["bare"]["rps"]
                print(f"  workers {workers}, {n:>3} events/request: throughput b/a {ratio:.2f} "
                      f"({ours:,.0f} vs {bare:,.0f} req/s)")  # fmt: skip
    print(f"benchmark process peak RSS {own_peak_rss_mib():,.0f} MiB")


HEY = "hey"

if __name__ == "__main__":
    main()
