"""Test-suite set-up: the ci profile by default, and a record of which notebooks nbval collected."""
import os
from pathlib import Path

os.environ.setdefault("KDLIB_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(session, config, items):
    config.kdlib_collected_notebooks = {Path(str(item.path)).resolve() for item in items
                                        if str(item.path).endswith(".ipynb")}
    config.kdlib_args = [Path(arg.split("::")[0]).resolve() for arg in config.args]
