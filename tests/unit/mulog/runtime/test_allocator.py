"""mulog.runtime.allocator: glibc's fast bins turned off in the daemons (pure, no broker)."""

import os
import platform
import subprocess
import sys

CALL = "from mulog.runtime import allocator; print(allocator.tune())"


def _run(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CALL], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_fast_bins_are_turned_off_on_glibc_only():
    assert _run({}) == str(platform.libc_ver()[0] == "glibc")


def test_a_value_the_operator_set_is_left_alone():
    assert _run({"GLIBC_TUNABLES": "glibc.malloc.mxfast=64"}) == "False"
