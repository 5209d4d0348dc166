"""The reference kernels import without PyTorch: graders and learners need only NumPy."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_reference_imports_without_torch():
    code = (
        "import sys\n"
        "import autograder.reference as reference\n"
        "assert callable(reference.batchnorm_forward)\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
