"""The docs cannot rot: links, config examples, PromQL and flags are checked against the code.

Each check is a small function over text, tested here on a bad input of its own, then run
over every document an operator or contributor reads:

- every relative link and `#anchor` resolves (anchors as GitHub computes them), and every
  repository path named in the prose (`docs/simulator.md`, `bench/exporter_poll.py`)
  exists;
- every block fenced as ```` ```yaml exporter-config ```` passes `--config.check`, and
  every ```` ```yaml web-config ```` block is a valid `--web.config.file`;
- every ```` ```promql ```` block parses and type-checks with promtool;
- the flags in the docs are the flags of the programs (see `test_dotted_flags_exist`);
- the metric tables list the families the exporter exposes, with their types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.cli import build_parser
from exporter.config import parse_config
from exporter.config.yamlfile import ConfigError
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.connectivity import FleetState
from exporter.fleet.targets import Targets
from exporter.web.config_file import parse_web_config
from iot_simulator.cli import build_parser as build_simulator_parser
from tests.support.markdown import (
    Block,
    anchors,
    broken_links,
    fenced_blocks,
    links,
    resolve,
    split_fences,
)
from tests.support.paths import CHART_DIR, REPO_ROOT, REPO_URL
from tests.support.stack import promtool, run_cli

DOCS_DIR = REPO_ROOT / "docs"
CONFIGURATION_DOC = DOCS_DIR / "configuration.md"
SIMULATOR_DOC = DOCS_DIR / "simulator.md"
DOCUMENTS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CONTRIBUTING.md",
    *sorted(DOCS_DIR.glob("*.md")),
    REPO_ROOT / "bench" / "README.md",
    CHART_DIR / "README.md",
    CHART_DIR / "templates" / "NOTES.txt",
]
# Shipped files that link to the docs by URL (runbook_url, the dashboard's runbook link).
LINKING_FILES = [
    REPO_ROOT / "monitoring" / "alerts.yaml",
    REPO_ROOT / "monitoring" / "alerts_test.yaml",
    REPO_ROOT / "monitoring" / "dashboard.json",
]


def name(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def doc_blocks(*words: str) -> list[tuple[str, Block]]:
    """Every fenced block marked with `words` in DOCUMENTS, with "file:line" for its test id."""
    return [
        (f"{name(doc)}:{block.line}", block)
        for doc in DOCUMENTS
        for block in fenced_blocks(doc.read_text(encoding="utf-8"), *words)
    ]


# --- links ------------------------------------------------------------------------------------

BAD_DOC = """\
# Title

## Title

See [the keys](configuration.md#keys), [twice](#title-1) and
`[in a code span](nowhere.md)`.

[missing file](no-such-page.md) [missing anchor](configuration.md#no-such-section)
[missing here](#title-2) [line of a file](../config.example.yaml#L3)
[not a line](../config.example.yaml#aws)

```
[in a fence](nowhere.md)
```

[ref]: gone.md
"""


def test_broken_links_are_reported() -> None:
    problems = broken_links(DOCS_DIR / "made-up.md", BAD_DOC)
    assert [problem.split(": ", 2)[1] for problem in problems] == [
        "(no-such-page.md)",
        "(configuration.md#no-such-section)",
        "(#title-2)",
        "(../config.example.yaml#aws)",
        "(gone.md)",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("IoTThingDisconnected", "iotthingdisconnected"),
        ("TLS and basic auth (`--web.config.file`)", "tls-and-basic-auth---webconfigfile"),
        ("IAM policy (least privilege)", "iam-policy-least-privilege"),
        ("Why CPU per call is above 0.6 ms", "why-cpu-per-call-is-above-06-ms"),
        ("The [simulator](simulator.md) & its flags", "the-simulator--its-flags"),
        ("snake_case stays", "snake_case-stays"),
    ],
)
def test_anchors_are_computed_as_github_does(heading: str, anchor: str) -> None:
    assert anchors(f"# {heading}\n") == [anchor]


def test_duplicate_headings_are_numbered_and_fenced_ones_ignored() -> None:
    text = '# A\n## A\n```sh\n# A comment, not a heading\n```\n### A\n<a id="custom"></a>\n'
    assert anchors(text) == ["a", "a-1", "a-2", "custom"]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=name)
def test_links_resolve(doc: Path) -> None:
    assert broken_links(doc) == []


def test_documents_link_somewhere() -> None:
    """Guard against a link reader that silently finds nothing."""
    assert len(links((REPO_ROOT / "README.md").read_text(encoding="utf-8"))) >= 10


# --- repository paths named in the prose -------------------------------------------------------

TOP_DIRECTORIES = (".ci", "bench", "docs", "exporter", "helm", "monitoring", "scripts", "tests")
REPO_PATH = re.compile(
    rf"(?<![\w/.-])(?:{'|'.join(re.escape(d) for d in TOP_DIRECTORIES)})/[\w./-]*[\w/]"
)


def missing_repo_paths(text: str, root: Path) -> list[str]:
    """Paths from the repository root named outside code blocks (`docs/simulator.md`) that do
    not exist. A path that starts with a top-level directory is read from the root, whichever
    document names it; globs and paths under other names are not checked."""
    _, prose = split_fences(text)
    return [
        f"line {number}: {path}"
        for number, line in prose
        for path in REPO_PATH.findall(line)
        if "*" not in path and not (root / path).exists()
    ]


def test_missing_repo_paths_are_reported(tmp_path: Path) -> None:
    for path in ("docs/simulator.md", "bench/README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    text = (
        "See docs/simulator.md, `bench/README.md` and tests/unit.\n"
        "Not docs/nothing.md, nor `exporter/gone.py`; https://x.org/docs/elsewhere.md is a URL.\n"
        "```\ndocs/in-a-fence.md\n```\n"
    )
    assert missing_repo_paths(text, tmp_path) == [
        "line 2: docs/nothing.md",
        "line 2: exporter/gone.py",
    ]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=name)
def test_repo_paths_named_in_the_docs_exist(doc: Path) -> None:
    assert missing_repo_paths(doc.read_text(encoding="utf-8"), REPO_ROOT) == []


def repo_url_problems(text: str, root: Path) -> list[str]:
    """URLs of files in this repository (REPO_URL/blob/main/PATH#ANCHOR) that do not resolve."""
    problems = []
    for url in re.findall(rf"{re.escape(REPO_URL)}/(?:blob|tree)/main/[^\s\"')]+", text):
        parts = urlsplit(url)
        path = parts.path.split("/main/", 1)[1]
        problem = resolve(root / path, parts.fragment)
        if problem:
            problems.append(f"{url}: {problem}")
    return problems


def test_broken_repo_urls_are_reported() -> None:
    text = (
        f'runbook_url: "{REPO_URL}/blob/main/docs/alerts.md#iotexporterdown"\n'
        f'runbook_url: "{REPO_URL}/blob/main/docs/alerts.md#iotexportergone"\n'
        f"see {REPO_URL}/blob/main/README.txt\n"
    )
    problems = repo_url_problems(text, REPO_ROOT)
    assert len(problems) == 2
    assert "#iotexportergone" in problems[0]
    assert "README.txt" in problems[1]


@pytest.mark.parametrize("path", LINKING_FILES, ids=name)
def test_shipped_links_into_the_docs_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert f"{REPO_URL}/blob/main/docs/" in text
    assert repo_url_problems(text, REPO_ROOT) == []


# --- config examples ---------------------------------------------------------------------------

EXPORTER_CONFIGS = doc_blocks("yaml", "exporter-config")
WEB_CONFIGS = doc_blocks("yaml", "web-config")


def exporter_config_problems(text: str, source: str) -> list[str]:
    """What `--config.check` says is wrong with a config, or nothing.

    `--config.check` (exporter.cli.check_config) is `load_config`: read the file, then
    `parse_config` its text. Parsing in-process keeps the check fast;
    `test_an_example_passes_the_real_config_check` runs the real command once.
    """
    try:
        parse_config(text, source)
    except ConfigError as error:
        return str(error).splitlines()
    return []


def test_bad_exporter_config_blocks_are_reported() -> None:
    doc = "```yaml exporter-config\naws: {regin: eu-west-1}\nthings: []\n```\n"
    [block] = fenced_blocks(doc, "yaml", "exporter-config")
    problems = exporter_config_problems(block.text, "made-up.md:1")
    assert any('aws.regin: unknown key (did you mean "region"?)' in p for p in problems)
    assert len(problems) == 2


def test_the_docs_hold_exporter_configs() -> None:
    """The marker cannot quietly vanish: the README and docs/configuration.md show configs."""
    where = {location.split(":")[0] for location, _ in EXPORTER_CONFIGS}
    assert {"README.md", "docs/configuration.md"} <= where
    assert len(EXPORTER_CONFIGS) >= 3


@pytest.mark.parametrize(
    "block", [block for _, block in EXPORTER_CONFIGS], ids=[loc for loc, _ in EXPORTER_CONFIGS]
)
def test_exporter_config_blocks_pass_the_config_check(block: Block) -> None:
    assert exporter_config_problems(block.text, f"line {block.line}") == []


def test_config_example_passes_the_config_check() -> None:
    example = REPO_ROOT / "config.example.yaml"
    assert exporter_config_problems(example.read_text(encoding="utf-8"), name(example)) == []


def test_an_example_passes_the_real_config_check(tmp_path: Path) -> None:
    """The in-process check and `--config.check` agree, on a good file and on a bad one."""
    _, block = EXPORTER_CONFIGS[0]
    good = tmp_path / "good.yaml"
    good.write_text(block.text)
    result = run_cli("--config.check", f"--config.file={good}")
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(block.text.replace("region:", "regin:"))
    result = run_cli("--config.check", f"--config.file={bad}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == exporter_config_problems(bad.read_text(), str(bad))


def test_the_docs_hold_a_web_config() -> None:
    assert [location.split(":")[0] for location, _ in WEB_CONFIGS] == ["docs/web-config.md"]


@pytest.mark.parametrize(
    "block", [block for _, block in WEB_CONFIGS], ids=[loc for loc, _ in WEB_CONFIGS]
)
def test_web_config_blocks_are_valid(block: Block) -> None:
    # The files it names (certificates) are not read: parse_web_config checks the keys.
    parse_web_config(block.text, f"line {block.line}")


# --- PromQL ------------------------------------------------------------------------------------

PROMQL_BLOCKS = doc_blocks("promql")


def promql_expressions(text: str) -> list[str]:
    """The expressions of a ```promql block.

    `#` lines are comments. An expression starts on an unindented line once the brackets
    of the one before are closed; indented lines and lines inside brackets continue it.
    """
    expressions: list[list[str]] = []
    depth = 0
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if depth == 0 and not line[0].isspace():
            expressions.append([])
        if not expressions:
            expressions.append([])
        expressions[-1].append(line)
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
    return ["\n".join(lines) for lines in expressions]


def recording_rules(expressions: Sequence[str]) -> str:
    """A rule file with each expression as the recording rule `doc_expr_<index>`."""
    rules = [{"record": f"doc_expr_{i}", "expr": e} for i, e in enumerate(expressions)]
    return yaml.safe_dump({"groups": [{"name": "docs", "rules": rules}]}, sort_keys=False)


def promql_problems(expressions: Sequence[tuple[str, str]], workdir: Path) -> list[str]:
    """promtool's complaints about (location, expression) pairs, each with its location."""
    rule_file = workdir / "doc-expressions.yaml"
    rule_file.write_text(recording_rules([expression for _, expression in expressions]))
    result = promtool("check", "rules", str(rule_file))
    if result.returncode == 0:
        return []
    output = result.stdout + result.stderr
    problems = [
        f"{location}: {line.strip()}"
        for index, (location, _) in enumerate(expressions)
        for line in output.splitlines()
        if f'"doc_expr_{index}"' in line
    ]
    return problems or [output]


def test_promql_blocks_are_split_into_expressions() -> None:
    block = (
        "# a comment\n"
        "sum(up)\n"
        "sum by (job) (\n"
        "    rate(x[5m])\n"
        ")\n"
        "\n"
        "(time() - y)\n"
        "  * on (a) group_left z\n"
    )
    assert promql_expressions(block) == [
        "sum(up)",
        "sum by (job) (\n    rate(x[5m])\n)",
        "(time() - y)\n  * on (a) group_left z",
    ]


def test_bad_promql_is_reported(tmp_path: Path) -> None:
    expressions = [("a.md:1", "sum(up)"), ("a.md:2", "sum(up"), ("a.md:3", "rate(up)")]
    problems = promql_problems(expressions, tmp_path)
    assert [problem.split(": ")[0] for problem in problems] == ["a.md:2", "a.md:3"]
    assert "unclosed left parenthesis" in problems[0]


def test_promql_in_the_docs_parses(tmp_path: Path) -> None:
    expressions = [
        (f"{location} #{number}", expression)
        for location, block in PROMQL_BLOCKS
        for number, expression in enumerate(promql_expressions(block.text), 1)
    ]
    assert promql_problems(expressions, tmp_path) == []
    # The marker cannot quietly vanish: metrics.md holds the example queries.
    assert any(location.startswith("docs/metrics.md") for location, _ in PROMQL_BLOCKS)
    assert len(expressions) >= 10


# --- flags -------------------------------------------------------------------------------------

# Dotted flags of programs other than the exporter that the docs may name (Prometheus's own
# --web.enable-lifecycle, say). None is named today; add one here rather than loosen the rule.
FOREIGN_DOTTED_FLAGS: frozenset[str] = frozenset()
DOTTED_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)+")
TABLE_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9.-]*[a-z0-9]")


def long_options(parser_options: Iterable[str]) -> set[str]:
    return {option for option in parser_options if option.startswith("--")}


def exporter_flags() -> set[str]:
    return long_options(o for a in build_parser()._actions for o in a.option_strings)


def simulator_flags() -> set[str]:
    return long_options(o for a in build_simulator_parser()._actions for o in a.option_strings)


def dotted_flags(text: str) -> set[str]:
    """Prometheus-style flags (`--config.file`, `--web.listen-address`) anywhere in `text`."""
    return set(DOTTED_FLAG.findall(text))


def table_flags(text: str) -> set[str]:
    """The long flags in the first cell of the table rows that document flags.

    A flag row's first cell starts with a flag, as in "| `--config.file` | ..." or
    "| `-h`, `--help` | ...". Escaped pipes (`\\|`) inside a cell do not end it.
    """
    flags: set[str] = set()
    _, prose = split_fences(text)
    for _, line in prose:
        cells = re.split(r"(?<!\\)\|", line)
        if line.startswith("|") and len(cells) > 2 and cells[1].strip().startswith("`-"):
            flags |= set(TABLE_FLAG.findall(cells[1]))
    return flags


def flag_problems(documented: set[str], actual: set[str], where: str) -> list[str]:
    return [f"{flag} is in {where} but not in --help" for flag in sorted(documented - actual)] + [
        f"{flag} is in --help but not in {where}" for flag in sorted(actual - documented)
    ]


def test_flag_readers_on_a_bad_document() -> None:
    doc = (
        "| flag | meaning |\n| --- | --- |\n"
        "| `--config.file` | the file |\n"
        "| `--outage refuse\\|reset`, `--no-quotas` | two flags |\n"
        "| `aws.region` | not a flag row |\n"
        "Run `iot-connectivity-exporter --web.nonsense=1 --log.level debug` or\n"
        "`helm install --namespace monitoring` (not dotted: not the exporter's).\n"
    )
    assert table_flags(doc) == {"--config.file", "--outage", "--no-quotas"}
    assert dotted_flags(doc) == {"--config.file", "--web.nonsense", "--log.level"}
    assert flag_problems({"--config.file", "--web.nonsense"}, {"--config.file", "--demo"}, "X") == [
        "--web.nonsense is in X but not in --help",
        "--demo is in --help but not in X",
    ]


def test_configuration_documents_every_exporter_flag() -> None:
    """docs/configuration.md's flag table is `iot-connectivity-exporter --help`, both ways."""
    documented = table_flags(CONFIGURATION_DOC.read_text(encoding="utf-8"))
    assert flag_problems(documented, exporter_flags(), name(CONFIGURATION_DOC)) == []


def test_simulator_documents_every_simulator_flag() -> None:
    """docs/simulator.md's flag table is `python -m iot_simulator --help`, both ways."""
    documented = table_flags(SIMULATOR_DOC.read_text(encoding="utf-8"))
    assert flag_problems(documented, simulator_flags(), name(SIMULATOR_DOC)) == []


@pytest.mark.parametrize("doc", DOCUMENTS, ids=name)
def test_dotted_flags_exist(doc: Path) -> None:
    """Every dotted flag in the docs is one of the exporter's.

    The exporter's flags are Prometheus-style, namespaced with a dot (`--config.file`,
    `--web.listen-address`); its only others, `--demo`, `--version` and `--help`, are in
    the table the test above checks. The other programs in these docs (helm, docker,
    podman, aws, amtool, promtool, py-spy, the simulator and the bench scripts) use
    undotted flags, and so many that their spelling cannot tell them apart from the
    exporter's: they are not checked here. The simulator's flags are checked against its
    own table. A dotted flag of another program goes into FOREIGN_DOTTED_FLAGS.
    """
    mentioned = dotted_flags(doc.read_text(encoding="utf-8"))
    assert sorted(mentioned - exporter_flags() - FOREIGN_DOTTED_FLAGS) == []


def test_the_docs_name_the_exporter_flags() -> None:
    """Guard against a flag reader that silently finds nothing."""
    text = "".join(doc.read_text(encoding="utf-8") for doc in DOCUMENTS)
    assert {"--config.file", "--web.config.file", "--config.check"} <= dotted_flags(text)


# --- metrics -----------------------------------------------------------------------------------

# The per-thing and fleet families as exporter.exposition renders them (tests/unit checks the file).
GOLDEN_EXPOSITION = REPO_ROOT / "tests" / "unit" / "golden" / "fleet.prom"
# A family, optionally with its labels in braces (`iot_x_total{kind}`), then its type.
METRIC_ROW = re.compile(
    r"^\| `((?:iot|process)_\w+)(?:\{[\w, ]+\})?` \| (\w+) \|", flags=re.MULTILINE
)


def optional_families() -> str:
    """The families only some configs show: iot_thing_info (registry:) and the iot_fleet_*
    aggregates (aggregates.queries). An empty fleet still writes their HELP and TYPE."""
    shape = Shape(staleness=60.0, info_labels=("thing_type",), aggregates=True)
    rendered = Exposition(shape).render(Targets(()), FleetState(()), {}, now=0.0)
    return rendered.text.decode()


def exposed_families() -> dict[str, str]:
    """Every iot_* family the exporter exposes without `events`, and its type."""
    registry = CollectorRegistry()
    ExporterMetrics(registry)
    exposition = (
        generate_latest(registry).decode() + GOLDEN_EXPOSITION.read_text() + optional_families()
    )
    return _families(exposition)


def event_families() -> dict[str, str]:
    """The families `events` adds (docs/events.md lists them), and their types."""
    registry = CollectorRegistry()
    EventMetrics(registry)
    return _families(generate_latest(registry).decode())


def _families(exposition: str) -> dict[str, str]:
    families = re.findall(r"^# TYPE (iot_\w+) (\w+)$", exposition, flags=re.MULTILINE)
    # The process turns *_created off (exporter.cli.main); this registry still has them.
    return {family: kind for family, kind in families if not family.endswith("_created")}


def metric_table(text: str) -> dict[str, str]:
    """The families in the doc's metric tables ("| `name` | type | ..."), and their types."""
    return dict(METRIC_ROW.findall(text))


def test_metric_table_reader_on_a_bad_document() -> None:
    doc = (
        "| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n"
        "| `iot_thing_connected` | gauge | `thing_name` | 1 if connected |\n"
        "| `iot_things_connected` | counter | | misspelt |\n"
        "| `poll.interval` | duration | | not a metric |\n"
    )
    table = metric_table(doc)
    assert table == {"iot_thing_connected": "gauge", "iot_things_connected": "counter"}
    assert set(table.items()) - set(exposed_families().items()) == {
        ("iot_things_connected", "counter")
    }


def test_exposed_families_are_read() -> None:
    families = exposed_families()
    assert families["iot_exporter_api_requests_total"] == "counter"
    assert families["iot_thing_connected"] == "gauge"
    assert len(families) >= 19


@pytest.mark.parametrize("doc", [REPO_ROOT / "README.md", DOCS_DIR / "metrics.md"], ids=name)
def test_metric_tables_list_every_family_with_its_type(doc: Path) -> None:
    assert metric_table(doc.read_text(encoding="utf-8")) == exposed_families()


def test_the_events_page_lists_every_event_family_with_its_type() -> None:
    table = metric_table((DOCS_DIR / "events.md").read_text(encoding="utf-8"))
    assert table == event_families()
