"""The tests' judge: the rehearsal's local OpenAI-compatible chat server (replies from a function, requests kept),
with the tests' default served name."""

from __future__ import annotations

from lmm_r1.rehearsal import ChatServer


class Stub(ChatServer):
    def __init__(self, reply, model: str = "gpt-3.5-turbo"):
        super().__init__(reply, model=model)
