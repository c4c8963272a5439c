"""Steady-state memory of a served demo under mixed requests (issue 10, item 13).

Starts ``geogrid serve`` (this checkout's code) on the demo county in a scratch folder (SpatiaLite), then for
``--seconds`` sends single lookups, 100,000-point CSV batches and, now and then, a 60 MB GeoJSON upload that
is read, parsed and refused (repeated codes) and a 120 MB one refused for its size, sampling the server's
resident set size (VmRSS) every few seconds. Prints the RSS after warm-up, the peak and the last third's
median: the steady state. Usage: ``python benchmarks/bench_memory.py --seconds 120``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GEOGRID = [sys.executable, "-c", "from geogrid.cli import main; main()"]


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused_upload() -> bytes:
    """A 60 MB GeoJSON of demo micro-grids repeated: read and parsed whole, then refused for its codes."""
    features = json.loads((ROOT / "boundaries" / "demo" / "microgrids.geojson").read_text())["features"]
    texts = [json.dumps(f) for f in features[:200]]
    copies = 60_000_000 // sum(map(len, texts)) + 1
    return b'{"type": "FeatureCollection", "features": [%s]}' % ",".join(texts * copies).encode()


def load(base: str, stop: threading.Event) -> None:
    """Mixed requests until ``stop``: lookups, CSV batches, refused 60 MB and 120 MB uploads now and then."""
    rng = random.Random(1)
    csv = "lon,lat\n" + "".join(
        f"{111.15 + rng.random() * 0.1:.6f},{39.8 + rng.random() * 0.1:.6f}\n" for _ in range(100_000)
    )
    parsed = refused_upload()
    big = b"x" * 120_000_000
    headers = {"Authorization": "Bearer geogrid-demo-admin-key"}
    with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            for _ in range(200):
                client.get("/v1/lookup", params={"lon": 111.15 + rng.random() * 0.1, "lat": 39.85})
            client.post("/v1/lookup", content=csv, headers={"content-type": "text/csv"})
            if round_ % 5 == 0:
                client.post("/v1/sets/demo/draft/microgrid", files={"file": ("m.geojson", parsed)})
                with contextlib.suppress(httpx.HTTPError):  # refused for its size
                    client.post("/v1/sets/demo/draft/grid", files={"file": ("big.geojson", big)})


def main() -> None:
    """Run the load against a served demo and print the RSS figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--every", type=float, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "boundaries").symlink_to(ROOT / "boundaries")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's code, wherever geogrid is installed
        subprocess.run([*GEOGRID, "demo"], cwd=folder, env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(
            [*GEOGRID, "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            start = rss_mb(server.pid)
            stop = threading.Event()
            worker = threading.Thread(target=load, args=(base, stop), daemon=True)
            worker.start()
            samples = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                time.sleep(args.every)
                samples.append(rss_mb(server.pid))
            stop.set()
            worker.join(timeout=180)
            steady = statistics.median(samples[-max(1, len(samples) // 3) :])
            print(
                f"RSS after start-up {start:.0f} MB; under load peak {max(samples):.0f} MB, "
                f"steady state (median of the last third) {steady:.0f} MB over {args.seconds:.0f} s"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
