"""Render report blocks to Markdown (images linked by relative path)."""

from __future__ import annotations

from pathlib import Path

from qaembed.report.document import Block, Bullets, Code, Heading, Image, Paragraph, TableBlock
from qaembed.report.tables import markdown_text


def render_markdown(blocks: list[Block], report_dir: Path) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + markdown_text(block.text))
        elif isinstance(block, Paragraph):
            parts.append(markdown_text(block.text))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {markdown_text(item)}" for item in block.items))
        elif isinstance(block, TableBlock):
            table = block.table
            text = f"**{markdown_text(table.title)}**\n\n{table.to_markdown()}"
            if table.note:
                text += f"\n\n{markdown_text(table.note)}"
            parts.append(text)
        elif isinstance(block, Image):
            parts.append(f"![{markdown_text(block.caption)}]({block.path.relative_to(report_dir).as_posix()})")
        elif isinstance(block, Code):
            parts.append(f"```\n{block.text}\n```")
        else:  # pragma: no cover - Block is a closed union
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n\n".join(parts) + "\n"
