"""Numbers in a notebook's prose, checked against the notebook's own results.

Every number a solution notebook's markdown quotes must be one of:

* a value of its reference results (``results/reference/<notebook>.json``) at the precision quoted: ``0.4240``
  matches 0.42396, ``56.9%`` matches 0.5693, ``+2.6 points`` matches a gain of 0.0261;
* a literal of its code cells (a size, a temperature, a learning rate: the set-up, not a result);
* a number the notebook cites from a paper, a model card or a data set (``CITED`` below), listed here so that
  a reviewer sees every number that was not measured;
* a section, list-item or question number (``## 3.``, ``section 3``, ``3. measure``, ``Q4.``, ``notebook 05``).

A measured sentence ("KD gained 7 errors", "most errors are repaired") belongs in a code cell that prints it
from the run's numbers; ``tests/test_claims.py`` fails when prose quotes a number that nothing supports.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?%?")
_NUMBERING = re.compile(r"^#+\s*\d+[.)]?|^\s*\d+\.(?=\s)|\bQ\d+\b|\b(?:[Ss]ections?|Drill|Bug)\s+\d+\b"
                        r"|\bnotebooks?\s+\d\d[a-z]?(?:\s*(?:-|and|,)\s*\d\d[a-z]?)*"
                        r"|\b\d\d[a-z]?_\w+", re.MULTILINE)

# Numbers cited, not measured: the papers' results, years, sections, model cards and data-set facts.
CITED = {
    "01_soft_targets_and_temperature": {"2015", "2.1", "2.5", "0.9"},  # Hinton et al. 2015, section 2.1, T 2.5-4
    "02_mnist_hinton": {"2015", "-2", "1,500", "133"},  # +-2 pixel jitter, 3% of 50,000, the paper's 133 of 1010
    "03_conv_features_calibration": {"2015", "2017", "80%", "95%"},  # FitNets, Guo et al., an example, 2 SE
    "04_transformer_compression": {"2019", "2020", "97%", "1.6", "96.8%", "9.4", "37", "384", "12", "22.7",
                                   "1536"},  # DistilBERT, TinyBERT, MiniLM model card, the tweets data set
    "05_llm_token_sequence_kd": {"2015", "2016", "2024", "196", "0.9999", "2,225", "2004", "2005", "576", "49",
                                 "49,152", "150"},  # papers, SmolLM2's card (hidden 576, 49,152 tokens), BBC News
    "05b_cross_tokenizer": {"2016", "2024", "152,064", "151,936", "2119", "17", "29", "2489"},  # papers, issue threads
    "06_rationale_distillation": {"2023", "135", "170", "40", "72", "63"},  # papers, SmolLM2-135M, a throughput
    # estimate, an example equation chain (36 2 9: 36*2=72. 72-9=63.)
    "07_preference_dpo": {"2022", "2023", "2024", "0.693", "-0.79", "0.79", "570", "70%"},  # papers, log 2, an example
    "08_teacher_data_pipeline": {"2022", "2023", "2024", "36", "108", "27", "72", "63", "9", "128", "99"},  # papers,
    # the example traces (calc(36*3)=108. calc(ans/4)=27.; 36 2 9: ...), datasketch's default 128 hashes, and the
    # world's value range (kdlib.reasoning.arithmetic.MAX_VALUE)
    "09_capacity_cascades_scorecards": {"2019", "2020", "97.5%"},  # Cho and Hariharan, Mirzadeh et al., the
    # one-sided normal probability two standard errors give
    "10_compress_then_distil": {"2013", "2024", "135", "15", "4", "40", "8", "3.1", "30", "1536"},  # Bengio et al.,
    # Minitron (15B -> 4B with 40x fewer tokens; Llama 3.1 8B -> 4B), SmolLM2-135M's card (30 layers, MLP 1536)
    "11_lora_and_speculative_drafts": {"2021", "2023", "2024", "135", "30", "80%", "0.3", "0.6", "3.4", "1.5",
                                       "2.2"},  # LoRA, Leviathan et al., DistillSpec, SmolLM2-135M's card, and the
    # interview answer's worked example (gamma 4: c = 0.3 gives S = E / 2.2; 80% acceptance, E about 3.4, S 1.5)
}


def _value(token: str) -> float:
    return float(token.rstrip("%").replace(",", ""))


def _decimals(token: str) -> int:
    body = token.rstrip("%").lower().split("e")[0]
    return len(body.split(".")[1]) if "." in body else 0


def numbers_in(value, out: list[float] | None = None) -> list[float]:
    """Every number in a results tree (dicts, lists, numbers and strings that hold numbers)."""
    out = [] if out is None else out
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, dict):
        for v in value.values():
            numbers_in(v, out)
    elif isinstance(value, list):
        for v in value:
            numbers_in(v, out)
    elif isinstance(value, str):
        out.extend(_value(m.group()) for m in NUMBER.finditer(value))
    return out


def supported(token: str, results: list[float]) -> bool:
    """True when some result, or 100 times it (a percentage or points), rounds to ``token`` as quoted."""
    want, places = _value(token), _decimals(token)
    return any(round(x, places) == want or round(100 * x, places) == want or round(-x, places) == want
               for x in results)


def unsupported(notebook: Path, results: dict, cited: set[str] = frozenset()) -> list[tuple[int, str, str]]:
    """``(cell index, number, context)`` for each number in the markdown of ``notebook`` that neither
    ``results`` (a results file's ``metrics``), the notebook's code cells nor ``cited`` supports."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    literals = {_value(m.group()) for m in NUMBER.finditer(code)}
    measured = numbers_in(results)
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = _NUMBERING.sub(" ", "".join(cell["source"]))
        for match in NUMBER.finditer(text):
            token = match.group()
            if token in cited or _value(token) in literals or supported(token, measured):
                continue
            found.append((i, token, text[max(0, match.start() - 50):match.end() + 30].replace("\n", " ")))
    return found


def check_notebook(notebook: Path, reference: Path) -> list[tuple[int, str, str]]:
    """``unsupported`` for a solution notebook against its committed reference results."""
    return unsupported(notebook, json.loads(Path(reference).read_text())["metrics"],
                       CITED.get(Path(notebook).stem, set()))
