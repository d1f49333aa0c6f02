"""The documents name only what exists: every repository path that ``README.md`` and ``docs/*.md`` name, and every
link between them, resolves; and the README stays a guide, short enough to read first.

What counts as a repository path (``is_repository_path``): a token in inline code (outside fenced blocks), or a
word of a ```bash block, with no spaces, whose first segment is a top-level entry of the repository (``score.py``,
``serving/codecs/``, ``swagger*.json``) or is ``docs``; or that holds a ``/`` and ends in a suffix the repository's
files use (``.py``, ``.md``, ``.yml``, ...), so that a typo in the first folder is caught too. It is read from the
repository root. Not paths: URLs, absolute paths (``/var/...``), ``$VARIABLES``, placeholders (``<name>``,
``my_model``, ``path/to``, ``...``) and what builds or jobs write (``outputs/``, ``build/``, ``.venv/``). A brace
list (``{endpoint,deployment}.yml``) is expanded, and a ``*`` must match at least one entry.

A relative markdown link is read from its document's folder, and its ``#anchor`` must name a heading there.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest

from tests.helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]
# A guide to rows, images, text, batch scoring and monitoring: a short section each, the depth in docs/.
README_MOST_LINES = 270

GENERATED = {"outputs", "build", ".venv"}  # written by training, make and jobs; absent from a clean checkout
PLACEHOLDERS = ("<", "my_model", "path/to", "...")
REPOSITORY_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".json", ".npy", ".toml"}
PATH_CHARACTERS = re.compile(r"[\w.*{},/-]+")
FENCED = re.compile(r"^ *```(\w*)\n(.*?)^ *```", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", flags=re.M)


def top_level_entries() -> set[str]:
    return ({path.name for path in REPO_ROOT.iterdir()} - GENERATED) | {"docs"}


def is_repository_path(token: str) -> bool:
    """Whether a token a document names is a path in this repository (the rule in this module's docstring)."""
    token = token.removeprefix("./")
    if token.startswith("/") or not PATH_CHARACTERS.fullmatch(token) or any(p in token for p in PLACEHOLDERS):
        return False
    first = token.split("/")[0]
    if first in GENERATED:
        return False
    if any(fnmatch(entry, first) for entry in top_level_entries()):
        return True
    return "/" in token and PurePosixPath(token).suffix in REPOSITORY_SUFFIXES


def named_tokens(text: str) -> list[str]:
    """Inline code outside fenced blocks, and the words of ```bash blocks (stripped of quotes, @ and brackets)."""
    tokens = INLINE_CODE.findall(FENCED.sub("", text))
    for language, block in FENCED.findall(text):
        if language == "bash":
            tokens += [word.strip("'\"@(),;") for word in block.split()]
    return [token.strip() for token in tokens]


def expand_braces(token: str) -> list[str]:
    """``a/{b,c}.yml`` -> ``a/b.yml``, ``a/c.yml`` (as the shell expands it)."""
    match = re.search(r"\{([^{}]*)\}", token)
    if match is None:
        return [token]
    head, tail = token[: match.start()], token[match.end() :]
    return [expanded for choice in match[1].split(",") for expanded in expand_braces(head + choice + tail)]


def exists(path: str) -> bool:
    path = path.rstrip("/")
    if "*" in path:
        return any(REPO_ROOT.glob(path))
    return (REPO_ROOT / path).exists()


def missing_paths(text: str) -> list[str]:
    """The repository paths ``text`` names that do not exist, in order of appearance."""
    missing = []
    for token in named_tokens(text):
        if is_repository_path(token):
            missing += [path for path in expand_braces(token.removeprefix("./")) if not exists(path)]
    return list(dict.fromkeys(missing))


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces to hyphens,
    a repeated heading numbered."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCED.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(document: Path) -> list[str]:
    """The relative links in ``document`` whose file does not exist or whose anchor names no heading there."""
    broken = []
    for target in LINK.findall(FENCED.sub("", document.read_text())):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            broken.append(f"{target} (no heading with that anchor in {linked.relative_to(REPO_ROOT)})")
    return broken


def relative(document: Path) -> str:
    return str(document.relative_to(REPO_ROOT))


@pytest.mark.parametrize(
    ("token", "counts"),
    [
        ("deploy/blue-deployment.yml", True),
        ("serving/codecs/", True),
        ("docs/api.md", True),
        ("score.py", True),
        (".ci/run", True),
        ("swagger*.json", True),
        ("deploy/kubernetes/{endpoint,deployment}.yml", True),
        ("servng/http.py", True),  # a typo in the first folder is still checked, and reported
        ("application/json", False),
        ("model_folder.weights", False),
        ("manifest.json", False),
        ("https://download.pytorch.org/whl/cpu", False),
        ("$AZUREML_MODEL_DIR/model/...", False),
        ("/var/azureml-app/azureml-models", False),
        ("outputs/model.pt", False),
        ("./outputs", False),
        ("build/model/", False),
        (".venv/bin/python", False),
        ("path/to/model/folder", False),
        ("model_arch/my_model.py", False),
        ("tests/test_<module>.py", False),
        ("make serve", False),
    ],
)
def test_what_counts_as_a_repository_path(token: str, counts: bool) -> None:
    assert is_repository_path(token) is counts


def test_a_path_that_does_not_exist_is_reported() -> None:
    text = (
        "Apply `deploy/deployment.yml`, see `deploy/kubernetes/{endpoint,nothing}.yml` and `deploy/endpoint.yml`:\n"
        "```bash\naz ml online-deployment create -f deploy/gone.yml\n```\n"
    )

    assert missing_paths(text) == ["deploy/deployment.yml", "deploy/kubernetes/nothing.yml", "deploy/gone.yml"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_repository_path_a_document_names_exists(document: Path) -> None:
    missing = missing_paths(document.read_text())

    assert not missing, f"{relative(document)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_link_in_a_document_resolves(document: Path) -> None:
    broken = broken_links(document)

    assert not broken, f"{relative(document)} has broken links: {broken}"


def test_every_docs_page_the_readme_links_exists() -> None:
    pages = {target.partition("#")[0] for target in LINK.findall(README.read_text()) if target.startswith("docs/")}

    assert {"docs/api.md", "docs/model-files.md", "docs/operations.md"} <= pages
    missing = sorted(page for page in pages if not (REPO_ROOT / page).is_file())
    assert not missing, f"README.md links docs pages that do not exist: {missing}"


def test_the_readme_stays_a_short_guide() -> None:
    lines = len(README.read_text().splitlines())

    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; move depth to docs/"


def test_every_setting_the_scoring_script_reads_is_in_the_settings_table() -> None:
    read = set(re.findall(r'"([A-Z][A-Z0-9_]*[A-Z0-9])"', (REPO_ROOT / "serving" / "settings.py").read_text()))
    table = (DOCS / "operations.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]

    missing = sorted(name for name in read - {"AZUREML_MODEL_DIR"} if f"`{name}`" not in table)
    assert not missing, f"docs/operations.md's Settings table lacks {missing}"
