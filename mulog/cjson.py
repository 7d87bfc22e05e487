"""JSON with comments: ``//`` line comments, ``/* */`` block comments and
trailing commas before ``]`` or ``}``, as used by the per-app settings files.

Comments and trailing commas are replaced by spaces (newlines kept), so the
line and column of a JSON syntax error still point into the original file.
"""

from __future__ import annotations

import re

import msgspec

# One alternation, scanned left to right: a string (kept), a line comment, a
# block comment, or a comma followed only by blanks/comments and a closer.
_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"'  # string literal (kept as is)
    r"|//[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r"|/\*",  # unterminated block comment
    re.S,
)


class CommentedJSONError(ValueError):
    def __init__(self, msg: str, line: int, col: int):
        super().__init__(f"line {line}, column {col}: {msg}")
        self.line, self.col, self.msg = line, col, msg


def _blank(s: str) -> str:
    return "".join(c if c == "\n" else " " for c in s)


def strip(text: str) -> str:
    """Return ``text`` with comments and trailing commas blanked out."""
    out = []
    pos = 0
    for m in _TOKEN.finditer(text):
        tok = m.group()
        seg = text[pos:m.start()]
        out.append(seg)
        if tok.startswith('"'):
            out.append(tok)
        elif tok == "/*":
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            raise CommentedJSONError("unterminated /* comment", line, col)
        else:
            out.append(_blank(tok))
        pos = m.end()
    out.append(text[pos:])
    joined = "".join(out)
    # trailing commas: only outside strings, so redo the scan on the comment-free text
    res = []
    pos = 0
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|,(?=\s*[\]}])', joined):
        res.append(joined[pos:m.start()])
        res.append(m.group() if m.group() != "," else " ")
        pos = m.end()
    res.append(joined[pos:])
    return "".join(res)


def loads(text: str | bytes):
    """Parse commented JSON; raises CommentedJSONError with line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CommentedJSONError(f"not UTF-8 ({e.reason} at byte {e.start})", 1, 1) from None
    clean = strip(text.removeprefix("\ufeff"))
    try:
        return msgspec.json.decode(clean)
    except msgspec.DecodeError as e:
        # msgspec reports a byte offset: "... (byte N)"
        m = re.search(r"\(byte (\d+)\)$", str(e))
        pos = len(clean.encode()[: int(m.group(1))].decode(errors="ignore")) if m else 0
        line = clean.count("\n", 0, pos) + 1
        col = pos - (clean.rfind("\n", 0, pos) + 1) + 1
        msg = re.sub(r"\s*\(byte \d+\)$", "", str(e))
        raise CommentedJSONError(msg, line, col) from None


def load(path) -> object:
    with open(path, "rb") as f:
        return loads(f.read())
