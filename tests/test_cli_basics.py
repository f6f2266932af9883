"""The CLI shell: version, fast help, error printing."""

import subprocess
import sys

from click.testing import CliRunner

from tinyq import __version__
from tinyq.cli import cli

SUBCOMMANDS = ["boards", "quantize", "inspect", "build", "flash"]


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_all_subcommands_exist():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in result.output


def test_help_does_not_import_tensorflow():
    # Every subcommand's --help, in a fresh interpreter: TensorFlow must stay unloaded.
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tinyq.cli import cli\n"
        f"for sub in {SUBCOMMANDS!r}:\n"
        "    r = CliRunner().invoke(cli, [sub, '--help'])\n"
        "    assert r.exit_code == 0, (sub, r.output)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tflite_micro', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_board_is_one_line_error_exit_2():
    result = CliRunner().invoke(cli, ["build", "examples/digits/model.keras", "--board", "uno",
                                      "--calib", "examples/digits/calib.npy"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown board 'uno'") and "(hint: " in lines[0]
