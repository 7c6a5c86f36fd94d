"""Plain Markdown tables, so the printed output can be pasted into a README as it is."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: Collection[int] = ()
) -> str:
    """A GitHub-flavoured Markdown table; the columns numbered in ``right`` align right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right_cols = set(right)

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                cell.rjust(w) if i in right_cols else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i in right_cols else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(row) for row in cells[1:])])


def title(text: str) -> str:
    return f"\n### {text}\n"
