"""The `patrol` command line starts and lists its subcommands."""
import subprocess
import sys


def test_patrol_help_lists_commands():
    out = subprocess.run([sys.executable, "patrol.py", "--help"], capture_output=True, text=True, check=True)
    assert "COMMAND" in out.stdout


def test_common_values_doctests():
    import doctest

    import common.geo
    import common.values

    for mod in (common.geo, common.values):
        failed, attempted = doctest.testmod(mod)
        assert attempted > 0 and failed == 0, mod.__name__
