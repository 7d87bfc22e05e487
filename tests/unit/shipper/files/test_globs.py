"""Which input wants a path and its log_name (shipper/files/globs.py), and the
folder a glob is watched from."""


import re

import pytest

from shipper.files.globs import log_name_for, watch_root

PATTERN = re.compile(r'^(?P<log_name>[a-z][a-z0-9_]*?)(?:[.-]\d[\d-]*)?\.log$')



@pytest.mark.parametrize("path, want", [
    ("/logs/log_item.log", "log_item"),
    ("/logs/log_item-2024-01-01-10.log", "log_item"),
    ("/logs/log_pay.2024010110.log", "log_pay"),
    ("/logs/Log_item.log", None),
    ("/logs/log_item.txt", None),
])
def test_log_name_from_the_file_name(path, want):
    assert log_name_for(path, None, PATTERN) == want



def test_static_log_name():
    assert log_name_for("/x/whatever.log", "log_login", None) == "log_login"



@pytest.mark.parametrize("pattern, root, recursive", [
    ("/var/log/game/*.log", "/var/log/game", False),
    ("/var/log/game/app.log", "/var/log/game", False),
    ("/var/log/**/*.log", "/var/log", True),
    ("/var/log/*/app.log", "/var/log", True),
    ("/*.log", "/", False),
])
def test_watch_root(pattern, root, recursive):
    assert watch_root(pattern) == (root, recursive)
