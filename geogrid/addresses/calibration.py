"""How sure is the matcher? The logistic model behind ``Match.confidence``, its fit and its noise generator.

The confidence is P(best candidate is the right building | evidence), a logistic model over the features
of ``geogrid.addresses.matcher.features`` (independent keys agreeing, exact keys, weakest name score,
conflicts, margin to the runner-up, whether the runner-up is a full match too, parts said, unplaced text).
It is fitted on texts made by ``noisy`` — this module's own hotline-style noise (typos with characters
of the registry's names, homophones from pypinyin, numerals both ways, parts dropped, reordered,
prefixed, full-width, punctuation), deliberately different code from ``variants.py`` so the acceptance
test never scores the data the model was fitted on.

Refit (after changing the features, the scores or the noise), from the repository root::

    .venv/bin/python -m geogrid.addresses.calibration boundaries/demo/addresses.csv

which writes ``calibration.json`` beside this module (seed 1201, 12,000 texts) and prints the fit and a
reliability table on a held-out seed (1202).
"""

from __future__ import annotations

import json
import math
import random
import sys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from geogrid.addresses.matcher import Matcher

MODEL_PATH = Path(__file__).with_name("calibration.json")
FIT_SEED = 1201
HOLDOUT_SEED = 1202
FIT_TEXTS = 12_000
# Used until calibration.json exists: agreeing keys dominate, conflicts and a close runner-up pull down.
DEFAULT = {"coef": [1.5, 1.0, 3.0, -2.0, 0.8, 0.0, -2.0, 0.2, -0.3, -2.0], "intercept": -2.0}
PREFIXES = ("内蒙古自治区", "内蒙古", "鄂尔多斯市", "鄂尔多斯", "准格尔旗")


def load(path: Path = MODEL_PATH) -> dict[str, Any]:
    """The fitted model (coefficients and intercept), or a hand-set default when none was fitted."""
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return dict(DEFAULT)


CAP = 0.85  # the most an answer with a named conflict, a weak name or a close rival can get
SHRINK = 20.0  # pseudo-texts of the logistic prior in each evidence class of the table


def evidence_class(feats: Sequence[float]) -> str:
    """The discrete evidence class of a feature vector: keys, exact keys, name band, conflicts, lead …"""
    band = (
        4
        if feats[2] >= 1
        else 3
        if feats[2] >= 0.9
        else 2
        if feats[2] >= 0.8
        else 1
        if feats[2] >= 0.7
        else 0
    )
    lead = 3 if feats[5] else 0 if feats[4] < 0.05 else 1 if feats[4] < 1 else 2
    keys = (feats[0], feats[1], band, feats[3], lead, feats[6], feats[7], feats[8], feats[9])
    return "".join(str(int(v)) for v in keys)


def logistic(model: dict[str, Any], feats: Sequence[float]) -> float:
    """The logistic model's probability for one feature vector."""
    z = model["intercept"] + sum(c * f for c, f in zip(model["coef"], feats, strict=True))
    return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


def predict(model: dict[str, Any], feats: Sequence[float]) -> float:
    """The calibrated probability for one feature vector.

    The logistic model, corrected by the observed accuracy of the vector's evidence class in the fit
    data (a table of [texts, right] per class; the logistic value counts as ``SHRINK`` pseudo-texts).
    """
    p = logistic(model, feats)
    seen = model.get("table", {}).get(evidence_class(feats))
    if seen is not None:
        p = (seen[1] + SHRINK * p) / (seen[0] + SHRINK)
    if feats[0] == 0 or (feats[4] < 0.05 and feats[6]):
        # no key agrees (a guess from names alone), or a runner-up that agrees as well: a coin toss at best
        p = min(p, 0.5)
    if feats[9] or feats[2] < 0.7 or (feats[4] < 1 and feats[6] and feats[2] < 1):
        # the text names another township/road/compound, its best name agrees only weakly, or a fuzzy
        # best has a runner-up close behind that agrees on a key as well (康安苑公寓 / 康安苑小区)
        p = min(p, CAP)
    return p


# -- the noise the model is fitted on --------------------------------------------------------------------


@lru_cache(maxsize=1)
def _homophones() -> dict[str, list[str]]:
    """Common characters (GB2312 level 1) grouped by toneless pinyin."""
    from pypinyin import lazy_pinyin

    groups: dict[str, list[str]] = {}
    for code in range(0xB0A1, 0xD7FA):
        try:
            ch = bytes([code >> 8, code & 0xFF]).decode("gb2312")
        except UnicodeDecodeError:
            continue
        groups.setdefault(lazy_pinyin(ch)[0], []).append(ch)
    return groups


def _typo(name: str, rng: random.Random, pool: str) -> str:
    """``name`` with one character replaced by a homophone or by another character of the names."""
    from pypinyin import lazy_pinyin

    if len(name) < 2:
        return name
    i = rng.randrange(len(name) - 1 if len(name) > 3 else len(name))
    ch = name[i]
    if rng.random() < 0.5:
        options = [c for c in _homophones().get(lazy_pinyin(ch)[0], []) if c != ch]
    else:
        options = [c for c in pool if c != ch]
    return name[:i] + rng.choice(options) + name[i + 1 :] if options else name


def _num(value: str, rng: random.Random, chinese: float = 0.3) -> str:
    """A number said as digits, full-width digits or Chinese numerals."""
    import cn2an

    roll = rng.random()
    if value.isdigit() and roll < chinese:
        return str(cn2an.an2cn(value, "low"))
    if roll < chinese + 0.1:
        return unicodedata.normalize("NFKC", value).translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
    return value


def noisy(registry: pd.DataFrame, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` hotline-style texts of random registry rows, as (text, address_id)."""
    rng = random.Random(seed)
    rows = registry.fillna("").astype(str).to_dict("records")
    pool = "".join(sorted({ch for r in rows for k in ("road", "compound", "village") for ch in r[k]}))
    doors = pd.Series([(r["village"], r["door"]) for r in rows if r["village"]]).value_counts()
    unique_doors = set(doors[doors == 1].index)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        r = rng.choice(rows)
        pieces: list[str] = []
        typo = rng.random() < 0.35

        def name(value: str) -> str:
            nonlocal typo
            if typo and rng.random() < 0.6:
                typo = False
                value = _typo(value, rng, pool)
            return value

        if r["village"]:
            village = name(r["village"])
            if rng.random() < 0.15:
                village = village.removesuffix("村").removesuffix("嘎查")
            pieces.append(village)
            if rng.random() < 0.85 or (r["village"], r["door"]) not in unique_doors:
                pieces.append(_num(r["group"], rng) + rng.choice(["组", "组", "社"]))
            pieces.append(_num(r["door"], rng) + "号")
        else:
            form = rng.choices(["road", "compound", "both"], [0.3, 0.35, 0.35])[0]
            if form in ("road", "both") and r["road"]:
                pieces.append(name(r["road"]) + _num(r["door"], rng) + rng.choice(["号", "号", ""]))
            if form in ("compound", "both") and r["compound"]:
                comp = name(r["compound"])
                if rng.random() < 0.1:
                    comp = comp[:-2]
                suffix = rng.choice(["号楼", "栋", "幢", "座", "号楼", "号"])
                building = "" if form == "both" and rng.random() < 0.2 else _num(r["building"], rng) + suffix
                part = comp + building
                if building and rng.random() < 0.3 and r["entrances"] not in ("", "0"):
                    entrance = str(rng.randint(1, max(int(r["entrances"]), 1)))
                    part += _num(entrance, rng) + rng.choice(["单元", "门", "单元"])
                pieces.append(part)
            if not pieces:
                continue
            if len(pieces) == 2 and rng.random() < 0.3:
                pieces.reverse()
        if r["township"] and rng.random() < 0.4:
            pieces.insert(0, name(r["township"]))
        if rng.random() < 0.3:
            pieces.insert(0, "".join(p for p in PREFIXES if rng.random() < 0.4))
        sep = rng.choice(["", "", "", " ", "，", "、", "  "])
        out.append((sep.join(pieces), r["address_id"]))
    return out


# -- the fit ---------------------------------------------------------------------------------------------


def evidence(matcher: Matcher, data: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and 0/1 labels (best candidate right) for the texts that got a candidate."""
    xs, ys = [], []
    for text, truth in data:
        feats, best = matcher.evidence(text)
        if feats is not None:
            xs.append(feats)
            ys.append(1.0 if best == truth else 0.0)
    return np.array(xs, dtype=float), np.array(ys)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, rounds: int = 50) -> dict[str, Any]:
    """Logistic regression by Newton steps (IRLS) with a small ridge penalty."""
    a = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(a.shape[1])
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -40, 40)))
        grad = a.T @ (p - y) + l2 * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"intercept": float(w[0]), "coef": [float(v) for v in w[1:]]}


def reliability(model: dict[str, Any], x: np.ndarray, y: np.ndarray) -> list[tuple[float, int, float]]:
    """Observed accuracy per confidence bin: (bin lower edge, count, accuracy)."""
    conf = np.array([predict(model, row) for row in x])
    edges = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    out = []
    for lo, hi in zip(edges, [*edges[1:], 1.01], strict=True):
        inside = (conf >= lo) & (conf < hi)
        if inside.any():
            out.append((lo, int(inside.sum()), float(y[inside].mean())))
    return out


def fit(
    registry: pd.DataFrame, n: int = FIT_TEXTS, seed: int = FIT_SEED, path: Path | None = MODEL_PATH
) -> dict:
    """Fit the confidence model on ``n`` noisy texts of ``registry`` and write it to ``path``."""
    from geogrid.addresses.matcher import Matcher

    x, y = evidence(Matcher(registry), noisy(registry, n, seed))
    model = fit_logistic(x, y)
    table: dict[str, list[int]] = {}
    for row, right in zip(x, y, strict=True):
        cell = table.setdefault(evidence_class(row), [0, 0])
        cell[0] += 1
        cell[1] += int(right)
    model["table"] = dict(sorted(table.items()))
    model["fitted_on"] = {"texts": n, "seed": seed, "rows": len(x), "right": float(y.mean())}
    if path is not None:
        path.write_text(json.dumps(model) + "\n", encoding="utf-8")
    return model


def main(argv: Sequence[str]) -> None:
    """Refit from a registry CSV (Chinese or canonical headers) and print a held-out reliability table."""
    from geogrid.addresses.matcher import Matcher

    registry = read_registry(argv[0] if argv else "boundaries/demo/addresses.csv")
    model = fit(registry)
    print(json.dumps({k: v for k, v in model.items() if k != "table"}))
    x, y = evidence(Matcher(registry, threshold=0.9), noisy(registry, 4000, HOLDOUT_SEED))
    for lo, count, acc in reliability(model, x, y):
        print(f"confidence >= {lo:.2f}: {count:5d} texts, right {acc:.4f}")


def read_registry(path: str) -> pd.DataFrame:
    """A registry CSV as canonical columns (the demo file has the Chinese headers)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    zh = {
        "地址编码": "address_id", "乡镇街道": "township", "道路": "road", "门牌号": "door", "小区": "compound",
        "楼栋": "building", "单元数": "entrances", "村": "village", "组": "group", "经度": "lon", "纬度": "lat",
        "建筑编号": "building_id", "别名": "aliases", "启用日期": "valid_from", "停用日期": "valid_to",
        "标准地址": "text",
    }  # fmt: skip
    return frame.rename(columns=zh)


if __name__ == "__main__":
    main(sys.argv[1:])
