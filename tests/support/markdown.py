"""Markdown as GitHub renders it, read closely enough to check the docs' links and code blocks.

Pure functions over text: fenced code blocks, heading anchors, and links. They cover the
subset of CommonMark these docs use (ATX headings, fences of backticks or tildes, inline
and reference links, `<a id>` anchors), not the whole specification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# GitHub links a line of a non-Markdown file as #L12 or #L12-L20.
_LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string ("yaml exporter-config"), text and opening line."""

    info: str
    text: str
    line: int

    @property
    def words(self) -> list[str]:
        return self.info.split()


@dataclass(frozen=True)
class Link:
    target: str
    line: int


def split_fences(text: str) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced code blocks, and every line outside them as (line number, text).

    A block's text is dedented by its fence's indentation, so a block inside a list
    item reads as it would on its own. An unclosed fence runs to the end, as in
    CommonMark.
    """
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or ("`" in opening["fence"] and "`" in opening["info"]):
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        index += 1
        start = index
        while index < len(lines) and not closing.match(lines[index]):
            body.append(_dedent(lines[index], indent))
            index += 1
        blocks.append(Block(opening["info"].strip(), "".join(f"{b}\n" for b in body), start))
        index += 1
    return blocks, prose


def _dedent(line: str, indent: int) -> str:
    removable = len(line) - len(line.lstrip(" \t"))
    return line[min(indent, removable) :]


def fenced_blocks(text: str, *words: str) -> list[Block]:
    """The fenced blocks whose info string holds all of `words`, e.g. "yaml", "exporter-config"."""
    blocks, _ = split_fences(text)
    return [block for block in blocks if all(word in block.words for word in words)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading, before duplicates are numbered.

    GitHub takes the heading's rendered text, lower-cases it, drops every character that
    is not a letter, a digit, a space, `-` or `_`, and turns each space into `-`.
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """Every ATX heading outside code blocks, as (level, text)."""
    _, prose = split_fences(text)
    found = []
    for _, line in prose:
        match = _HEADING.match(line)
        if match:
            found.append((len(match[1]), match[2]))
    return found


def anchors(text: str) -> list[str]:
    """The anchors of a Markdown document: its headings' (duplicates numbered -1, -2, ...,
    as GitHub does) and those of explicit `<a id=...>` or `<a name=...>` tags."""
    used: set[str] = set()
    counts: dict[str, int] = {}
    result = []
    for _, heading in headings(text):
        base = slug = github_anchor(heading)
        while slug in used:
            counts[base] = counts.get(base, 0) + 1
            slug = f"{base}-{counts[base]}"
        used.add(slug)
        result.append(slug)
    _, prose = split_fences(text)
    result += [m for _, line in prose for m in _HTML_ANCHOR.findall(line)]
    return result


def links(text: str) -> list[Link]:
    """Inline links, images and reference definitions outside code blocks and code spans."""
    _, prose = split_fences(text)
    found = []
    for number, line in prose:
        plain = _CODE_SPAN.sub("code", line)
        found += [Link(target, number) for target in _INLINE_LINK.findall(plain)]
        definition = _REFERENCE_DEFINITION.match(plain)
        if definition:
            found.append(Link(definition[1], number))
    return found


def broken_links(doc: Path, text: str | None = None) -> list[str]:
    """Every relative link of `doc` whose file or anchor does not exist, as "doc:line: why".

    Absolute links (http:, https:, mailto:, ...) are not followed: the tests have no
    network. `text` replaces the file's content, so a test can check a document it made up.
    """
    source = doc.read_text(encoding="utf-8") if text is None else text
    problems = []
    for link in links(source):
        where = f"{doc}:{link.line}: ({link.target})"
        if _SCHEME.match(link.target):
            continue
        if link.target in ("", "#"):
            problems.append(f"{where}: empty link")
            continue
        path, _, anchor = link.target.partition("#")
        if not path:  # an anchor in this document, which may exist only as `text`
            if anchor not in anchors(source):
                problems.append(f"{where}: no anchor #{anchor} in {doc.name}")
            continue
        problem = resolve((doc.parent / unquote(path)).resolve(), anchor)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def resolve(target: Path, anchor: str = "") -> str | None:
    """Why a link to `target` (a file or directory) and `#anchor` would be broken, or None.

    A Markdown file's anchors are its headings'; another file takes only GitHub's line
    anchors (#L12, #L12-L20).
    """
    if not target.exists():
        return f"{target} does not exist"
    if not anchor:
        return None
    if target.suffix.lower() == ".md" and target.is_file():
        found = anchor in anchors(target.read_text(encoding="utf-8"))
    else:
        found = target.is_file() and _LINE_ANCHOR.match(anchor) is not None
    return None if found else f"no anchor #{anchor} in {target.name}"
