"""Geocoding benchmark: GeoGrid's address matcher beside rapidfuzz and PostgreSQL pg_trgm on the same texts.

On the demo registry (9,243 standard addresses) and hotline variants of it made by
``geogrid.addresses.variants`` (a seed of the benchmark's own): GeoGrid ``Matcher`` build time and
memory, ``match_many`` throughput, single ``match`` p50/p99, and its top-1 accuracy and placements at the
configured threshold; beside it on the same texts ``rapidfuzz.process.extractOne`` over every canonical
text (WRatio on the raw text, and on text normalised by GeoGrid's ``normalize``) and a PostgreSQL
``pg_trgm`` nearest-trigram query on a GiST index (``ORDER BY text <-> q LIMIT 1``, a scratch database),
each with its top-1 accuracy. Then GeoGrid's accuracy against the threshold: the share placed, the
precision of what was placed, the share left unsure.

GeoGrid's text functions keep caches of recent texts, so every timed GeoGrid round gets texts it has not
seen (variants of another seed); the peers keep nothing and take the accuracy set.

    python benchmarks/bench_geocode.py [--texts 3000] [--rounds 3] [--skip-postgis]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rapidfuzz import process

from geogrid.addresses.matcher import Match, Matcher
from geogrid.addresses.registry import address_text, read_addresses, validate_addresses
from geogrid.addresses.text import normalize
from geogrid.addresses.variants import ABSENT_KINDS, KINDS, Variant, absent, variants
from geogrid.errors import InvalidAddress
from geogrid.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database

DEMO = Path(__file__).resolve().parent.parent / "boundaries" / "demo" / "addresses.csv"
SEED = 20261203  # the benchmark's own; the acceptance test uses 20261202, calibration others
ABSENT_TEXTS = 600
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


def registry() -> pd.DataFrame:
    """The demo registry, checked as an import checks it."""
    good, errors = validate_addresses(read_addresses(DEMO))
    assert not errors, errors[:3]
    return good


def best_building(result: Match | InvalidAddress) -> str | None:
    """The building of a result's best candidate, None when refused or without candidates."""
    return None if isinstance(result, InvalidAddress) or result.best is None else result.best.building_id


def confidence(result: Match | InvalidAddress) -> float:
    """A result's confidence (0 for a refused text)."""
    return 0.0 if isinstance(result, InvalidAddress) else result.confidence


def per_call(fn: Callable[[str], Any], texts: Sequence[str]) -> tuple[list[Any], list[float]]:
    """Each text through ``fn`` one at a time: the answers and the seconds of each call."""
    answers, seconds = [], []
    clock = time.perf_counter
    for text in texts:
        start = clock()
        answers.append(fn(text))
        seconds.append(clock() - start)
    return answers, seconds


def quantile_us(seconds: Sequence[float], q: float) -> float:
    """The q-quantile of call times, in microseconds."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def build_matcher(frame: pd.DataFrame, threshold: float) -> tuple[Matcher, float, float]:
    """A matcher, the seconds to build it, and the MB it holds (tracemalloc, a second build)."""
    start = time.perf_counter()
    matcher = Matcher(frame, threshold=threshold)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    again = Matcher(frame, threshold=threshold)
    held = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    del again
    return matcher, seconds, held


def pg_trgm(frame: pd.DataFrame, canonical: list[str], texts: list[str]) -> dict[str, Any]:
    """Nearest canonical text by trigram distance (GiST) in a scratch PostgreSQL database, one query a text."""
    with scratch_database() as engine:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            cur.execute("CREATE TABLE addr (building_id text, text text)")
            cur.executemany(
                "INSERT INTO addr VALUES (%s, %s)", list(zip(frame["building_id"], canonical, strict=True))
            )
            start = time.perf_counter()
            cur.execute("CREATE INDEX addr_trgm ON addr USING gist (text gist_trgm_ops)")
            cur.execute("ANALYZE addr")
            raw.commit()
            index_s = time.perf_counter() - start
            cur.execute("SELECT pg_relation_size('addr_trgm')")
            index_mb = cur.fetchone()[0] / 1e6
            sql = "SELECT building_id, similarity(text, %s) FROM addr ORDER BY text <-> %s LIMIT 1"

            def query(text: str) -> tuple[str, float]:
                cur.execute(sql, (text, text))
                return cur.fetchone()

            per_call(query, texts[:50])  # warm the plan and the index pages
            answers, seconds = per_call(query, texts)
        finally:
            raw.close()
    return {"answers": answers, "seconds": seconds, "index_s": index_s, "index_mb": index_mb}


def main(argv: list[str] | None = None) -> int:
    """Run everything once (GeoGrid's throughput over ``--rounds`` rounds of fresh texts); Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-postgis", action="store_true")
    args = parser.parse_args(argv)
    threshold = Settings().geocode_threshold
    frame = registry()
    canonical = [address_text(row) for row in frame.to_dict("records")]
    buildings = list(frame["building_id"])
    made: list[Variant] = variants(frame, args.texts, SEED)
    texts = [v.text for v in made]
    fresh = [[v.text for v in variants(frame, args.texts, SEED + r)] for r in range(1, args.rounds + 2)]
    print(
        f"demo registry: {len(frame):,} addresses; {len(texts):,} variants (seed {SEED}), threshold {threshold}"
    )

    matcher, build_s, held_mb = build_matcher(frame, threshold)
    results = matcher.match_many(texts)  # the accuracy set, first sight
    rates = []
    for batch in fresh[:-1]:
        start = time.perf_counter()
        matcher.match_many(batch)
        rates.append(len(batch) / (time.perf_counter() - start))
    start = time.perf_counter()
    matcher.match_many(texts)
    warm_rate = len(texts) / (time.perf_counter() - start)

    def single(text: str) -> Match | None:
        try:
            return matcher.match(text)
        except InvalidAddress:
            return None

    _answers, single_s = per_call(single, fresh[-1])

    rows: list[dict[str, Any]] = []
    right = [best_building(r) == v.building_id for v, r in zip(made, results, strict=True)]
    placed = [confidence(r) >= threshold for r in results]
    rows.append({
        "method": "GeoGrid `Matcher.match_many`", "rate": statistics.median(rates),
        "p50": quantile_us(single_s, 0.5), "p99": quantile_us(single_s, 0.99), "top1": sum(right) / len(right),
        "sure_wrong": sum(p and not ok for p, ok in zip(placed, right, strict=True)),
        "note": f"placed {sum(placed) / len(placed):.1%} at ≥ {threshold}; built in {build_s:.2f} s, "
                f"{held_mb:.0f} MB; {warm_rate:,.0f} texts/s on texts seen before",
    })  # fmt: skip

    choices = {"raw": canonical, "normalised": [normalize(t) for t in canonical]}
    for name, prepare in (("raw", lambda t: t), ("normalised", normalize)):

        def best(text: str, prepare: Callable[[str], str] = prepare, name: str = name) -> tuple[int, float]:
            try:
                query = prepare(text)
            except InvalidAddress:
                return -1, 0.0
            hit = process.extractOne(query, choices[name])
            return (hit[2], hit[1]) if hit else (-1, 0.0)

        answers, seconds = per_call(best, texts)
        ok = [i >= 0 and buildings[i] == v.building_id for (i, _s), v in zip(answers, made, strict=True)]
        rows.append({
            "method": f"rapidfuzz `extractOne` (WRatio), {name} text", "rate": len(texts) / sum(seconds),
            "p50": quantile_us(seconds, 0.5), "p99": quantile_us(seconds, 0.99), "top1": sum(ok) / len(ok),
            "sure_wrong": sum(s >= 90 and not g for (_i, s), g in zip(answers, ok, strict=True)),
            "note": "score ≥ 90 counted as sure; every canonical text scored",
        })  # fmt: skip

    if not args.skip_postgis:
        pg = pg_trgm(frame, canonical, texts)
        ok = [b == v.building_id for (b, _s), v in zip(pg["answers"], made, strict=True)]
        rows.append({
            "method": "PostgreSQL `pg_trgm` `ORDER BY text <-> q LIMIT 1` (GiST)",
            "rate": len(texts) / sum(pg["seconds"]), "p50": quantile_us(pg["seconds"], 0.5),
            "p99": quantile_us(pg["seconds"], 0.99), "top1": sum(ok) / len(ok),
            "sure_wrong": sum(s >= 0.9 and not g for (_b, s), g in zip(pg["answers"], ok, strict=True)),
            "note": f"similarity ≥ 0.9 counted as sure; index {pg['index_mb']:.1f} MB built in "
                    f"{pg['index_s']:.2f} s; one round trip a text",
        })  # fmt: skip

    base = rows[0]["rate"]
    print(
        "\n| method | texts/s | GeoGrid is | p50 µs | p99 µs | top-1 right building | wrong but sure | note |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        ratio = base / row["rate"]
        times = (
            "1×" if row is rows[0] else f"{ratio:,.1f}× faster" if ratio >= 1 else f"{1 / ratio:,.1f}× slower"
        )
        print(f"| {row['method']} | {row['rate']:,.0f} | {times} | {row['p50']:,.0f} | {row['p99']:,.0f} | "
              f"{row['top1']:.1%} | {row['sure_wrong']} | {row['note']} |")  # fmt: skip

    conf = [confidence(r) for r in results]
    print("\n| threshold | placed | precision of placed | wrong placed | unsure (queued) |")
    print("|---:|---:|---:|---:|---:|")
    for t in THRESHOLDS:
        at = [c >= t for c in conf]
        good = sum(a and ok for a, ok in zip(at, right, strict=True))
        n = sum(at)
        print(
            f"| {t:.2f} | {n / len(at):.1%} | {good / n if n else 1:.2%} | {n - good} | {1 - n / len(at):.1%} |"
        )

    print("\n| kind | variants | top-1 | placed | wrong placed |\n|---|---:|---:|---:|---:|")
    for kind in KINDS:
        idx = [i for i, v in enumerate(made) if kind in v.kinds]
        if idx:
            print(f"| {kind} | {len(idx)} | {sum(right[i] for i in idx) / len(idx):.1%} | "
                  f"{sum(placed[i] for i in idx) / len(idx):.1%} | "
                  f"{sum(placed[i] and not right[i] for i in idx)} |")  # fmt: skip

    # Texts no building is meant by: a registry road (compound) with a number it lacks, another has.
    missing = absent(frame, ABSENT_TEXTS, SEED)
    got = matcher.match_many([v.text for v in missing])
    near = [process.extractOne(normalize(v.text), choices["normalised"]) for v in missing]
    print(f"\n{len(missing)} texts naming no one building (`variants.absent`: a number the road or compound lacks, "
          "or a door with another building of its compound): "
          "any placement is wrong")  # fmt: skip
    print("\n| kind | texts | GeoGrid placed (≥ 0.9) | GeoGrid queued with candidates | "
          "rapidfuzz normalised, score ≥ 90 |\n|---|---:|---:|---:|---:|")  # fmt: skip
    for kind in ABSENT_KINDS:
        idx = [i for i, v in enumerate(missing) if v.kinds == (kind,)]
        print(f"| {kind} | {len(idx)} | {sum(confidence(got[i]) >= threshold for i in idx)} | "
              f"{sum(isinstance(got[i], Match) and bool(got[i].candidates) for i in idx)} | "
              f"{sum(bool(near[i]) and near[i][1] >= 90 for i in idx)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
