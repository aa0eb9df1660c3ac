"""What every refused CLI call must look like: exit status 2 and one `error:` line, no traceback."""

from __future__ import annotations

import subprocess


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a refused call (asserting exit status 2 and nothing else on stderr)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]
