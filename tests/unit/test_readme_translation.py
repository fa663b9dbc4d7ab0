"""README.zh-CN.md keeps step with README.md: same commands, same parameters."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGLISH = (ROOT / "README.md").read_text(encoding="utf-8")
CHINESE = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """From `heading` to the next heading of the same or a higher level."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    rest = text[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def commands(text: str) -> set[str]:
    """Shell commands in bash code blocks, without their trailing comments."""
    found = set()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                found.add(re.sub(r"\s+", " ", command))
    return found


def first_cells(table_section: str) -> list[str]:
    return [
        line.split("|")[1].strip() for line in table_section.splitlines() if line.startswith("| `")
    ]


def table_keys(table_section: str, columns: int) -> list[tuple[str, ...]]:
    """The first `columns` cells of each row whose first cell is code."""
    return [
        tuple(cell.strip() for cell in line.split("|")[1 : 1 + columns])
        for line in table_section.splitlines()
        if line.startswith("| `")
    ]


def test_the_readme_links_the_chinese_one_and_back() -> None:
    assert "(README.zh-CN.md)" in ENGLISH
    assert "(README.md)" in CHINESE


def test_both_give_the_same_commands() -> None:
    """Every command but those of the sections left in English (benchmarks, soak)."""
    english_only = commands(section(ENGLISH, "## Performance"))
    assert commands(CHINESE) == commands(ENGLISH) - english_only
    assert "python3 scripts/dev.py serve" in commands(CHINESE)
    assert "python3 scripts/dev.py test" in commands(CHINESE)


def marked(cell: str) -> list[str]:
    """What a translation keeps as it is: code spans and bold values."""
    return re.findall(r"`[^`]+`|\*\*[^*]+\*\*", cell)


def test_both_list_the_same_request_fields_and_defaults() -> None:
    english = table_keys(section(ENGLISH, "## Request fields"), 3)
    chinese = table_keys(section(CHINESE, "## 请求字段"), 3)
    assert english[0][:1] == ("`messages`",)
    assert [row[0] for row in chinese] == [row[0] for row in english]
    # the default column (names of settings, OpenAI's values) is kept as it is
    assert [marked(row[2]) for row in chinese] == [marked(row[2]) for row in english]


def test_both_list_the_same_settings_variables_and_flags() -> None:
    english = table_keys(section(ENGLISH, "## Configuration"), 4)
    chinese = table_keys(section(CHINESE, "## 配置"), 4)
    assert len(english) > 30
    assert [row[0] for row in chinese] == [row[0] for row in english]
    assert [row[2] for row in chinese] == [row[2] for row in english]
    assert [marked(row[1]) for row in chinese] == [marked(row[1]) for row in english]
    assert [marked(row[3]) for row in chinese] == [marked(row[3]) for row in english]


def test_both_list_the_same_endpoints() -> None:
    english = {re.sub(r"\{.*", "", c) for c in first_cells(section(ENGLISH, "## Endpoints"))}
    chinese = first_cells(section(CHINESE, "## 接口"))
    paths = set()
    for cell in chinese:
        paths.update(p.strip() for p in cell.split("、"))
    assert {re.sub(r"\{.*", "", p) for p in paths} == english
