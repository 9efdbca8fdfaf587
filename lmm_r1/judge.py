"""An optional LLM answer extractor over any OpenAI-compatible endpoint (off by default).

The paper had Qwen2.5-14B-Instruct, served by vLLM, extract the final answer from each response where a
benchmark needs it (PAPER.md §7); the kit's rule-based scorer then compares the extracted answer with the gold
one, as for any other completion. Start a server on a GPU machine, then point evaluation at it:

    vllm serve Qwen/Qwen2.5-14B-Instruct --port 8001
    lmm-r1 eval --model results/paper/mgt_percept_seed42/model --benchmarks mathverse \
        --judge-url http://localhost:8001/v1 --judge-model Qwen/Qwen2.5-14B-Instruct

Results scored this way are labelled ``judge:<model>``; rule-based ones ``rule``. For MathVerse the response is
first cut to its last 30 words, as lmms-eval's MathVerse extractor did (``trunk_response``). An unreachable
endpoint is an error (:class:`JudgeUnavailable`) unless the caller asked to fall back to rule-based scores.
Only the standard library is used (``urllib``), so the judge adds no dependency.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lmm_r1 import prompts


class JudgeUnavailable(RuntimeError):
    """The judge endpoint cannot be reached or answers with something that is not a chat completion."""


def last_words(text: str, n: int | None) -> str:
    """The last ``n`` space-separated words (lmms-eval's ``trunk_response`` for MathVerse); all if n is None."""
    if not n or n <= 0:
        return text
    return " ".join(text.split(" ")[-n:])


@dataclass
class Judge:
    """A chat-completions client for answer extraction."""

    base_url: str
    """The server's OpenAI API root, e.g. ``http://localhost:8001/v1``."""
    model: str = "Qwen/Qwen2.5-14B-Instruct"
    """The served model name (vLLM's ``--served-model-name``; the paper's extractor by default)."""
    api_key: str | None = None
    """Bearer token; ``$OPENAI_API_KEY`` if unset (a local vLLM server needs none)."""
    timeout: float = 60.0
    max_tokens: int = 64
    workers: int = 8
    """Concurrent requests (the server batches them)."""

    @property
    def label(self) -> str:
        return f"judge:{self.model}"

    def _request(self, path: str, payload: dict | None = None) -> dict:
        url = self.base_url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as e:  # refused, DNS, timeout, HTTP error, bad JSON
            raise JudgeUnavailable(
                f"LLM judge at {url} failed: {e}. Start an OpenAI-compatible server (e.g. `vllm serve "
                f"{self.model} --port 8001`) and pass its /v1 URL, or evaluate without --judge-url for rule-based "
                f"scores (--judge-fallback rule falls back to them when the judge is down)") from e

    def check(self) -> None:
        """Fail fast, before any generation, when the endpoint is down or does not serve ``model``."""
        served = [m.get("id") for m in self._request("/models").get("data", [])]
        if served and self.model not in served:
            raise JudgeUnavailable(f"LLM judge at {self.base_url} serves {served}, not {self.model!r}: "
                                   "pass --judge-model with one of those names")

    def complete(self, prompt: str, *, temperature: float = 0.0, max_tokens: int = 256,
                 choices: list[str] | None = None) -> str:
        """One user-turn chat completion, as the fork's ``get_chat_response`` sent it (stripped text).

        ``choices`` constrains the answer: vLLM >= 0.11 reads ``structured_outputs.choice``, the vLLM the authors
        ran read ``guided_choice`` (the fork's field); both are sent and a server ignores the one it does not know.
        """
        payload = {"model": self.model, "temperature": temperature, "max_tokens": max_tokens, "n": 1,
                   "messages": [{"role": "user", "content": prompt}]}
        if choices:
            payload.update(guided_choice=list(choices), structured_outputs={"choice": list(choices)})
        out = self._request("/chat/completions", payload)
        try:
            return (out["choices"][0]["message"]["content"] or "").strip()
        except (KeyError, IndexError, TypeError):
            raise JudgeUnavailable(f"LLM judge at {self.base_url} returned no chat completion: {out!r:.300}") from None

    def complete_many(self, prompts: list[str], **kwargs) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda p: self.complete(p, **kwargs), prompts))

    def extract(self, question: str, response: str) -> str:
        """The final answer the judge reads in ``response`` ("" for "null"): the rule protocol's short extractor."""
        return self._answer(self.complete(self._extract_prompt(question, response), max_tokens=self.max_tokens))

    def extract_many(self, questions: list[str], responses: list[str]) -> list[str]:
        texts = self.complete_many([self._extract_prompt(q, r) for q, r in zip(questions, responses)],
                                   max_tokens=self.max_tokens)
        return [self._answer(t) for t in texts]

    @staticmethod
    def _extract_prompt(question: str, response: str) -> str:
        return prompts.JUDGE_EXTRACT_PROMPT.format(question=question, response=response)

    @staticmethod
    def _answer(text: str) -> str:
        text = text.removeprefix("Extracted answer:").strip()
        return "" if text.lower() == "null" else text
