"""A command's failure read back the same way by the tests that expect one."""

from typer.testing import CliRunner


def refused(result, code=1):
    """The command's output on one line, after checking it failed with ``code`` (None: any but 0) and no traceback."""
    output = " ".join(result.output.split())
    assert result.exit_code != 0 if code is None else result.exit_code == code, result.output
    assert "Traceback" not in output
    return output


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result
