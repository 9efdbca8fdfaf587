"""A local OpenAI-compatible chat server for judge tests: replies come from a function, requests are kept."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stub:
    """``reply(prompt, payload) -> text`` answers every chat completion; ``requests`` keeps each payload."""

    def __init__(self, reply, model: str = "gpt-3.5-turbo"):
        self.reply, self.requests = reply, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send({"data": [{"id": model}]})

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(payload)
                text = stub.reply(payload["messages"][0]["content"], payload)
                self._send({"choices": [{"message": {"role": "assistant", "content": text}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def prompts(self) -> list[str]:
        return [p["messages"][0]["content"] for p in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
