"""The commented-JSON reader used for per-app settings files."""

import pytest

from mulog import cjson


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('// head\n{"a": 1} // tail', {"a": 1}),
        ('{/* x */"a": /* y */ 1}', {"a": 1}),
        ('{"a": [1, 2, 3,],}', {"a": [1, 2, 3]}),
        ('{"a": [1, 2, 3 , \n /* c */ ], }', {"a": [1, 2, 3]}),
        ('{"url": "http://host//path"}', {"url": "http://host//path"}),
        ('{"c": "/* not a comment */"}', {"c": "/* not a comment */"}),
        ('{"q": "a \\"// still string\\" b"}', {"q": 'a "// still string" b'}),
        ('{"e": "ends with backslash \\\\"} // c', {"e": "ends with backslash \\"}),
        ('{"comma": ",}", "x": 1,}', {"comma": ",}", "x": 1}),
        ('{"multi": 1 /* a\nb\nc */, "n": 2}', {"multi": 1, "n": 2}),
        ('\ufeff{"bom": true}', {"bom": True}),
        ('{"u": "中文 // 注释"} // 注释', {"u": "中文 // 注释"}),
        ("[]", []),
    ],
)
def test_parses(text, expected):
    assert cjson.loads(text) == expected
    assert cjson.loads(text.encode("utf-8")) == expected


def test_error_points_at_original_line_and_column():
    text = '{\n  // comment\n  "a": 1\n  "b": 2\n}'
    with pytest.raises(cjson.CommentedJSONError) as ei:
        cjson.loads(text)
    assert ei.value.line == 4
    assert ei.value.col == 3


def test_unterminated_block_comment():
    with pytest.raises(cjson.CommentedJSONError) as ei:
        cjson.loads('{"a": 1}\n/* open')
    assert "unterminated" in str(ei.value)
    assert ei.value.line == 2


def test_comment_markers_only_inside_strings_are_untouched():
    s = cjson.strip('{"a": "//", "b": "/*", "c": "*/"}')
    assert s == '{"a": "//", "b": "/*", "c": "*/"}'


def test_invalid_utf8_is_a_clear_error():
    with pytest.raises(cjson.CommentedJSONError) as ei:
        cjson.loads(b'{"a": "\xff"}')
    assert "UTF-8" in str(ei.value)
