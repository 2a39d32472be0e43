"""The docs name only what exists: every relative link, every `avaudit/...` path, every `path.py:name` and
every `avaudit.module.name` in README.md, docs/ and the other READMEs resolves in this checkout.

Read as text, without importing avaudit's modules, so a renamed file or function fails here in the fast tier.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", REPO / "sample_videos" / "README.md",
                REPO / "avaudit" / "weights" / "README.md", REPO / "benchmarks" / "README.md",
                *(REPO / "docs").glob("*.md")])

LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w/.-])avaudit/[\w/.-]*[\w/]")
NAMED = re.compile(r"(?<![\w/.-])(avaudit/[\w/]+\.py):([A-Za-z_][\w.]*)")
DOTTED = re.compile(r"(?<![\w/.-])avaudit(?:\.[A-Za-z_]\w*)+")
UPWARD = re.compile(r"`(\.\./[^`\s]*\.(?:md|py|txt|csv|yaml|toml))`")  # a document or source file, not `../../etc/passwd`


def defines(source: str, name: str) -> bool:
    """Whether module text defines `name`: a def, a class, an assignment, an attribute, an import or an
    entry of a name table (avaudit/__init__.py's lazy exports)."""
    pattern = (rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|self\.{name}\s*=|\bimport\b.*\b{name}\b"
               rf"|[\"']{name}[\"']|add_module\(f?[\"']{re.escape(name[:-1])}")
    return re.search(pattern, source, flags=re.M) is not None


def module_file(dotted: str) -> Path | None:
    base = REPO / dotted.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def unresolved_dotted(name: str) -> str | None:
    """`avaudit.a.b.c`: the longest prefix that is a module, then each remaining part defined in it."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        found = module_file(".".join(parts[:cut]))
        if found is not None:
            rest = parts[cut:]
            if not rest or defines(found.read_text(), rest[0]):
                return None
            return f"{name}: {found.relative_to(REPO)} defines no {rest[0]}"
    return f"{name}: no such module"


def unresolved_named(path: str, names: str) -> str | None:
    """`avaudit/x.py:Class.method`: the file exists and defines each part."""
    file = REPO / path
    if not file.is_file():
        return f"{path}: no such file"
    source = file.read_text()
    missing = [part for part in names.split(".") if not defines(source, part)]
    return f"{path}:{names}: {', '.join(missing)} not defined there" if missing else None


def problems(page: Path, home: Path = REPO) -> list[str]:
    """What `page` names that does not exist; links and `../` paths must also stay inside `home`."""
    text = page.read_text()
    found = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (page.parent / target.split("#")[0]).resolve()
        if not file.is_relative_to(home):
            found.append(f"link {target}: outside the repository")
        elif not file.exists():
            found.append(f"link {target}: no such file")
    found += [f"path {path}: outside the repository" for path in UPWARD.findall(text)
              if not (page.parent / path).resolve().is_relative_to(home)]
    found += [f"path {path}: no such file or folder" for path in PATH.findall(text)
              if not (REPO / path.split(":")[0]).exists()]
    found += [p for path, names in NAMED.findall(text) if (p := unresolved_named(path, names))]
    found += [p for name in DOTTED.findall(text) if (p := unresolved_dotted(name))]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_path_and_name_a_page_gives_exists(page):
    assert problems(page) == []


def test_the_check_catches_each_kind_of_stale_reference(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("[gone](nowhere.md) [away](../../../../../../etc/hosts) `../../../../../../shared/DATASETS.md` "
                    "`avaudit/backbones.py` `avaudit/model/fusion.py:no_such_pool` "
                    "`avaudit.samples.make_samples` `avaudit.planted.no_such_function` "
                    "[ok](page.md) `avaudit/model/fusion.py:FusionNet.heads_forward` `avaudit.outputs.read_csv`")
    assert problems(page, home=tmp_path) == [
        "link nowhere.md: no such file",
        "link ../../../../../../etc/hosts: outside the repository",
        "path ../../../../../../shared/DATASETS.md: outside the repository",
        "path avaudit/backbones.py: no such file or folder",
        "avaudit/model/fusion.py:no_such_pool: no_such_pool not defined there",
        "avaudit.samples.make_samples: avaudit/__init__.py defines no samples",
        "avaudit.planted.no_such_function: avaudit/planted.py defines no no_such_function",
    ]


def test_readme_stays_under_8_kb_and_its_second_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) < 8 * 1024
    second = re.search(r"```bash\n[^\n]*\n([^\n]*)\n```", readme).group(1)
    ci = (REPO / ".ci" / "run").read_text()
    for step in ('pip install -c constraints.txt ".[test,docs]"', "python -m pytest -q", "mkdocs build --strict",
                 "(command -v chromium || (apt-get update && apt-get install -y chromium))"):
        assert step in second and step in ci, step


def test_the_readme_make_samples_writes_names_a_function_that_exists():
    """planted.py writes each sample set's README.md (sample_videos/README.md is one): its dotted names resolve."""
    source = (REPO / "avaudit" / "planted.py").read_text()
    named = DOTTED.findall(source)
    assert "avaudit.planted.make_samples" in named
    assert [p for name in named if (p := unresolved_dotted(name))] == []


def test_the_cli_reference_hook_writes_every_command_and_option_help_shows():
    """docs/hooks/cli_reference.py (run by mkdocs) against the click command `avaudit COMMAND --help` prints."""
    import html
    import importlib.util

    import typer

    from avaudit.cli import app

    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "docs" / "hooks" / "cli_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown(f"# Commands\n\n{hook.MARKER}\n", None, None, None)
    assert hook.MARKER not in page
    group = typer.main.get_command(app)
    context = group.make_context("avaudit", [], resilient_parsing=True)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert f"## `avaudit {name}`" in page
        sub = command.make_context(name, [], parent=context, resilient_parsing=True)
        for record in filter(None, (parameter.get_help_record(sub) for parameter in command.get_params(sub))):
            names, text = record
            assert f"<td><code>{html.escape(names)}</code></td><td>{html.escape(text)}</td>" in page


def test_code_points_at_a_docs_page_not_at_readme():
    """README is the front page only; a code comment that says why points at the docs page that says it."""
    bare = [f"{path.relative_to(REPO)}:{number}" for path in sorted((REPO / "avaudit").rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\bREADME\b(?!\.md)", line)]
    assert bare == []
