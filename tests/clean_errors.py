"""How a refused command must look to its user, shared by the CLI test files."""

from __future__ import annotations


def assert_clean_error(result, exit_code: int, *phrases: str) -> None:
    """Stderr ends with one error line and a hint line; no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-2].startswith("error: ") and lines[-1].startswith("  hint: "), result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
