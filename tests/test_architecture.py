"""Architecture contracts (pyproject.toml, [tool.importlinter]): experiments -> agents ->
latentrl, envs independent of both, no import cycles between sibling modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports")
    assert exe is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=None, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout
    assert out.stdout.count("KEPT") == 3, out.stdout


def test_no_module_of_ours_imports_experiments() -> None:
    """Entry scripts are leaves: nothing imports them (they are not a package)."""
    assert not (ROOT / "experiments" / "__init__.py").exists()
    for package in ("latentrl", "agents", "envs"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "from experiments" not in text and "import experiments" not in text, path
    # Importing every module of ours in a fresh interpreter must not pull `experiments` in
    # (this process cannot tell: other tests load entry scripts on purpose).
    assert "experiments" not in packages_loaded_by_importing_ours()


def test_importing_the_library_loads_no_plotting_and_no_metrics() -> None:
    """Importing every module of ours chooses no matplotlib backend and loads neither matplotlib
    nor torchmetrics (scipy) nor vector-quantize-pytorch (einx, torch._dynamo): they load when a
    figure, a metric or a quantiser is made, so a command that only checks its input starts fast."""
    heavy = {"matplotlib", "torchmetrics", "vector_quantize_pytorch"}
    assert not heavy & packages_loaded_by_importing_ours()


def packages_loaded_by_importing_ours() -> set[str]:
    """Top-level packages in ``sys.modules`` after a fresh interpreter imports every module of
    ``latentrl``, ``agents`` and ``envs``."""
    probe = (
        "import importlib, pkgutil, sys\n"
        "for pkg in ('latentrl', 'agents', 'envs'):\n"
        "    root = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(root.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    loaded = set(out.stdout.strip().splitlines()[-1].split())
    assert {"latentrl", "agents", "envs", "torch"} <= loaded, loaded  # the probe did import
    return loaded
