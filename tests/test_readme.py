"""The README's code blocks run as written.

Python blocks run in a fresh interpreter beside a fresh demo database. Shell blocks run in order, each
with ``bash -euo pipefail``, in one fresh folder (``boundaries/`` linked in, ``.venv/bin`` on the PATH)
whose demo database a real ``geogrid serve`` process serves; ``GEOGRID_URL`` names that server, which
the README's ``export GEOGRID_URL=${GEOGRID_URL:-…}`` keeps. ``curl`` reads a ``.curlrc`` with
``--fail-with-body --silent --show-error``, so an HTTP error fails its block as it would catch a reader's
eye. Where a block's purpose is an answer, the answer is checked (``ANSWERS``).

A block may be marked by an HTML comment on the line before it:
``<!-- not run: why -->`` (listed by ``test_blocks_not_run_are_few_and_say_why``; keep them few) or
``<!-- known bug: what -->`` (runs, and is a strict xfail: it reports the bug until the code is fixed,
then fails so that the mark is removed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import served_demo

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*(not run|known bug):\s*(.*?)\s*-->\n)?```(\w*)\n(.*?)```", re.DOTALL)
SHELL = ("sh", "bash", "shell")
RUN_ELSEWHERE = {"sql": "PostGIS only; tests/db/test_locate.py calls geogrid_locate on PostGIS"}
MAX_NOT_RUN = 3
DEFAULT_URL = "${GEOGRID_URL:-http://127.0.0.1:8000}"
BLOCK_TIMEOUT_S = (
    900  # a loaded 2-core machine: the slowest block (validate, repair, compare) takes ~30 s idle
)

# A command of the block (a substring) -> what its output must contain (strings, or compiled patterns).
ANSWERS: dict[str, list[str | re.Pattern[str]]] = {
    "geogrid import grids.geojson --set demo --level grid": [
        "~ 150622001001001 name '新华社区第1网格' → '新华东网格'",
        "Written to draft v2 of 'demo'.",
        "Published v2 of 'demo', valid from 2027-01-01.",
        "Wrote 522 units to grids.gpkg (cgcs2000).",
    ],
    "sqlite:///var/typo.sqlite": ["no GeoGrid database at", "exit code 2"],
    "geogrid import drawn.geojson": [
        "kept from the draft (the file has no such column): households, population",
        re.compile(r"522 │\s+0 │\s+0 │\s+0 │\s+522 │"),
    ],
    "grids_gcj02.geojson --set demo --level grid   #": [
        "import it again with --crs gcj02",
        # the GCJ-02 file read as such: no geometry moves, only the name renamed above differs
        re.compile(r"522 │\s+0 │\s+1 │\s+0 │\s+521 │\s+0 │"),
    ],
    "geogrid assign reports.csv": [
        "3,lng is not a number: 'oops'",  # placed.errors.csv: row number and reason
        "R1,111.2057,39.8512,150622006004010002",  # as the GCJ-02 lookup over HTTP answers
    ],
    '/v1/lookup?lon=111.2&lat=39.85"': [
        '"unit":{"code":"150622009001011006"',
        '"code":"150622006004010002"',  # the GCJ-02 point
        "A1,111.2,39.85,150622009001011006,false,",
        "A3,111.9,39.1,,false,",  # outside every unit: an empty code
        '"type": "FeatureCollection"',
        '"links"',
        "/static/swagger-ui/swagger-ui-bundle.js",
    ],
    "iconv -f UTF-8 -t GBK > excel.csv": [
        "A1,111.2057,39.8512,150622006004010002",  # GBK read, GCJ-02 named as the CLI names it
        "look swapped",
    ],
    'KEY=$(geogrid keys create --name "ops admin"': ['"name":"map wall","role":"viewer"', '"key":"gg_'],
    "KEY=geogrid-demo-admin-key": [
        '"committed":false',
        '"committed":true',
        '"number":3,"valid_from":"2027-07-01"',
        '"from":2,"to":3',
    ],
    "geogrid validate grids.shp": ["grids.shp: no problems (522 units).", "one_network.gpkg"],
    "geogrid people import boundaries/demo/roster.csv --set demo": [
        re.compile(r"3651 │\s+0 │\s+0 │\s+3651 │"),  # the dry run: every post of the demo unchanged
        "Nothing was written.",
        "2026-11-15",  # the planted grid's worker, in post on 1 November
        "150622001002004, 150622004003004, 150622012002009",  # the planted grids without a leader
        "150622007001",  # the community without a secretary
        "(P001300)",  # the worker spread over five grids
        "written to service.html",
    ],
    "geogrid addresses list --set demo --limit 2": [
        re.compile(r"9,243 │\s+0 │\s+0 │\s+9,243 │"),  # the exported registry, imported as a dry run
        "H001,薛家湾镇纬十一路507号鑫嘉府公寓1号楼,150622001001001001,1.000,placed",  # prefix, numerals
        "H003,薛家湾镇纬十一路515号鑫嘉府公寓2号楼,150622001001001001,1.000,placed",  # a typo
        "H004,沙圪堵镇博爱路83号鑫和居花园3号楼,150622002001006003,1.000,placed",  # an alias
        "H005,,,0.500,queued",
        "6,address text has no letters or digits",
        re.compile(r"6 rows \(v\d+ of 'demo'\): 5 placed, 0 queued, 0 unsure \(not queued\), 1 error\."),
    ],
    "q=鑫嘉府公寓２号楼": [
        "True 1.0 薛家湾镇纬十一路515号鑫嘉府公寓2号楼 150622001001001001",
        "薛家湾镇纬十一路515号鑫嘉府公寓2号楼 4.52 m",
        "1 1 1 [None, ",
        "True 蓝天街道复兴街19号东嘉城新村1号楼 {'alias': 'exact'}",
        '"unchanged":9243',
    ],
    "Idempotency-Key: app-0001": [
        "31 E0102 暴露垃圾 2.0 hours ['grid', 'community', 'street', 'county']",
        "1 150622006004010002 1 reported 上报 grid",  # GCJ-02 placed as the lookup places it, in v1
        re.compile(r"^200$", re.MULTILINE),  # the retry: the same incident
        "closed 结案 5 False",
        "409 'accept' is not allowed on an incident that is closed (结案); it is final",
        "['report', 'accept', 'dispatch', 'start', 'resolve', 'verify', 'close']",
        "张* 138****1234 路边垃圾堆了三天，电话 138****1234",  # the viewer's view
    ],
    "geogrid incidents import 工单.csv --set demo --commit": [
        "<service_code>E0101</service_code>",
        '"service_request_id":"2"',
        re.compile(r"│\s+3 │\s+2 │\s+0 │\s+0 │\s+1 │"),  # 2 new, 1 row refused
        re.compile(r"│\s+3 │\s+0 │\s+2 │\s+0 │\s+1 │"),  # again: both seen before
        "row 4, 受理时间",
    ],
    "leader=true": [
        "'role_label': '网格长', 'phone': '187****4092'",  # a masked phone for an anonymous caller
        "A1,111.2,39.85,150622009001011006,false,,奇乌兰",
        '"phones":"masked"',
        "['150622001002004', '150622004003004', '150622012002009']",
        '"unchanged":3586',  # the exported roster, uploaded as a dry run
        '"unit_code":"150622005002002","valid_from":"2026-12-02"',
    ],
}


@dataclass(frozen=True)
class Block:
    """A fenced block of the README: where it starts, its language, text, and mark (if any)."""

    line: int
    language: str
    text: str
    mark: str | None = None
    why: str = ""

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def blocks(language: str | tuple[str, ...] | None = None) -> list[Block]:
    """The README's fenced blocks, in order; only those in ``language`` when given."""
    text = README.read_text(encoding="utf-8")
    found = [
        Block(text[: m.start(3)].count("\n"), m.group(3), m.group(4), m.group(1), m.group(2) or "")
        for m in BLOCK.finditer(text)
    ]
    if isinstance(language, str):
        language = (language,)
    return [b for b in found if language is None or b.language in language]


def _param(block: Block):
    marks = (
        [pytest.mark.xfail(strict=True, reason=f"known bug: {block.why}")]
        if block.mark == "known bug"
        else []
    )
    return pytest.param(block, id=f"line{block.line}", marks=marks)


def _runnable(language: str | tuple[str, ...]) -> list:
    return [_param(b) for b in blocks(language) if b.mark != "not run"]


# ---- Python ---------------------------------------------------------------------------------------


# Session-scoped: xdist may hand a worker this module's tests in several turns, between other modules',
# and a module-scoped fixture would load (or run) everything again each time (~3 minutes for the shell).
@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory) -> Path:
    """A folder with the demo county loaded into var/geogrid.sqlite, as `geogrid demo` leaves it."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "boundaries").symlink_to(ROOT / "boundaries")
    geogrid = Path(sys.executable).with_name("geogrid")
    subprocess.run([str(geogrid), "demo"], cwd=folder, check=True, capture_output=True, timeout=600)
    return folder


@pytest.mark.xdist_group("readme-python")  # one demo database for them all (make test)
@pytest.mark.parametrize("block", _runnable("python"))
def test_python_block_runs_as_written(demo_folder, block):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=demo_folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert done.returncode == 0, f"{block}:\n{done.stderr[-3000:]}"


# ---- shell, against a served demo ------------------------------------------------------------------


@pytest.fixture(scope="session")
def shell_runs(tmp_path_factory) -> dict[int, subprocess.CompletedProcess[str]]:
    """Every shell block not marked `not run`, run in README order in one folder beside a served demo."""
    folder = tmp_path_factory.mktemp("readme-shell")
    results: dict[int, subprocess.CompletedProcess[str]] = {}
    with served_demo(folder) as served:
        (folder / ".curlrc").write_text("fail-with-body\nsilent\nshow-error\n")
        env = {**served.env, "GEOGRID_URL": served.url, "CURL_HOME": str(folder), "COLUMNS": "200"}
        for block in blocks(SHELL):
            if block.mark == "not run":
                continue
            try:
                results[block.line] = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block.text],
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=BLOCK_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as exc:
                results[block.line] = subprocess.CompletedProcess(
                    exc.cmd, -1, str(exc.stdout or ""), f"timed out after {BLOCK_TIMEOUT_S} s"
                )
    return results


# The blocks share one folder and one server, in order: one xdist worker runs them all (make test).
@pytest.mark.xdist_group("readme-shell")
@pytest.mark.parametrize("block", _runnable(SHELL))
def test_shell_block_runs_as_written(shell_runs, block):
    done = shell_runs[block.line]
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block} exited with {done.returncode}:\n{output[-4000:]}"
    for command, answers in ANSWERS.items():
        if command not in block.text:
            continue
        for answer in answers:
            found = answer.search(output) if isinstance(answer, re.Pattern) else answer in output
            assert found, (
                f"{block}: no {getattr(answer, 'pattern', answer)!r} in the output:\n{output[-4000:]}"
            )


# ---- the blocks themselves -------------------------------------------------------------------------


def test_every_block_is_run_or_says_why():
    languages = {b.language for b in blocks()}
    assert languages <= {"python", *SHELL, *RUN_ELSEWHERE}, languages
    assert len(_runnable("python")) >= 3 and len(_runnable(SHELL)) >= 8


def test_blocks_not_run_are_few_and_say_why():
    not_run = [b for b in blocks() if b.mark == "not run"]
    listing = "\n".join(f"{b}: {b.why}" for b in not_run)
    print(f"README blocks not run:\n{listing}")
    assert all(b.why for b in not_run), listing
    assert len(not_run) <= MAX_NOT_RUN, listing


def test_every_answer_names_a_block_that_runs():
    texts = [b.text for b in blocks(SHELL) if b.mark != "not run"]
    for command in ANSWERS:
        assert sum(command in t for t in texts) == 1, command


def test_run_blocks_reach_the_service_only_through_geogrid_url():
    """A literal port in a block would reach whatever listens there (another checkout's server)."""
    for block in blocks(SHELL):
        if block.mark != "not run":
            assert "127.0.0.1:8000" not in block.text.replace(DEFAULT_URL, ""), block
