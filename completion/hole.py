"""What kind of hole the cursor is in, and how many tokens to give it.

Line-based for now: the cursor is mid-line (text follows it on its line), at the
end of a line, or on an empty line.
"""

from __future__ import annotations

from enum import StrEnum

from completion.api import CompletionSettings
from completion.context import Context


class HoleKind(StrEnum):
    MID_LINE = "mid_line"
    END_OF_LINE = "end_of_line"
    EMPTY_LINE = "empty_line"


def classify(ctx: Context) -> HoleKind:
    if ctx.line_suffix.strip():
        return HoleKind.MID_LINE
    if ctx.line_prefix.strip():
        return HoleKind.END_OF_LINE
    return HoleKind.EMPTY_LINE


def span_length(kind: HoleKind, settings: CompletionSettings) -> int:
    """Tokens in the span: a line of code is ~10 tokens, so 16 covers most single
    lines; multi-line holes get the largest bucket."""
    if settings.span_len:
        return settings.span_len
    if settings.max_lines > 1 and kind is not HoleKind.MID_LINE:
        return 64
    return 16
