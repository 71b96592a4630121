"""The model card's speed section: the first Markdown table of each benchmark results file in a given folder.

The folder is always the caller's (e.g. the repository's `benchmarks/results`): an installed package has none.
"""

from __future__ import annotations

from pathlib import Path

# How the card names the folder the tables come from (the repository's committed results).
BENCHMARKS_LABEL = "benchmarks/results"


def _first_table(lines: list[str]) -> list[str]:
    """The first run of Markdown table lines (starting with `|`), stripped."""
    table: list[str] = []
    for line in lines:
        if line.lstrip().startswith("|"):
            table.append(line.strip())
        elif table:
            break
    return table


def benchmark_sections(benchmarks_dir: str | Path | None) -> list[dict[str, str]]:
    """{"title", "source", "table"} of every `**/*.md` results file under `benchmarks_dir` that has a table.

    The title is the file's first heading; a run kept in a subfolder (e.g. `paper_8k/`) is named after it.
    None or a missing folder gives no sections.
    """
    if benchmarks_dir is None or not Path(benchmarks_dir).is_dir():
        return []
    root = Path(benchmarks_dir)
    sections = []
    for path in sorted(root.rglob("*.md")):
        relative = path.relative_to(root)
        lines = path.read_text(encoding="utf-8").splitlines()
        title = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("#")), path.stem)
        if len(relative.parts) > 1:
            title = f"{title} [{relative.parent.as_posix()}]"
        table = _first_table(lines)
        if len(table) >= 3:
            source = f"{BENCHMARKS_LABEL}/{relative.as_posix()}"
            sections.append({"title": title, "source": source, "table": "\n".join(table)})
    return sections
