"""The text of the model at a span, for messages and for the comments of emitted code."""

from __future__ import annotations


def source_text(source: str, span, limit: int = 100) -> str:
    """The text of a span (its first line, cut at ``limit``), with anything unprintable escaped."""
    lines, texts = _of_source(source)
    key = (span, limit)
    if key in texts:
        return texts[key]
    if not 1 <= span.line <= len(lines):
        return ""
    line = lines[span.line - 1]
    end = span.end_col - 1 if span.end_line == span.line else len(line)
    text = line[span.col - 1:end].strip()
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    if not text.isprintable():
        text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                       for c in text)
    texts[key] = text
    return text


_source_cache: dict = {"source": None}


def _of_source(source: str) -> tuple[list[str], dict]:
    """The lines of the last source asked about, and the texts of its spans found so far."""
    if _source_cache["source"] is not source:
        _source_cache.update(source=source, lines=source.split("\n"), texts={})
    return _source_cache["lines"], _source_cache["texts"]


def snippet(model, span) -> str:
    if span is None or not model.source:
        return ""
    lines = model.source.split("\n")        # the lexer's lines: \r, \f, U+2028 do not end one
    if span.line != span.end_line or span.line > len(lines):
        return ""
    text = " ".join(lines[span.line - 1][span.col - 1: span.end_col - 1].split())
    return "".join(c if c.isprintable() else "\ufffd" for c in text)   # no escapes to the terminal
