"""A chat-completions endpoint on 127.0.0.1 for the judge tests, scriptable per request.

Each request takes the next behaviour from `script` (then `default`):
  "ok"                     a well-formed completion whose content comes from `responder(request body)`
  "stall"                  no reply until the server closes: any client timeout is reached
  ("status", code, headers)  an error status (429, 500, ...) with the given headers; its message repeats
                           the Authorization header it received
  ("content", text)        a completion with exactly this content (e.g. malformed JSON)
  "garbage"                HTTP 200 with a body that is not JSON
Every request is recorded (path, headers, parsed body) in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AXES = (
    "warm_cold",
    "verbose_concise",
    "confident_cautious",
    "proactive_reluctant",
    "empathetic_analytical",
    "formal_casual",
    "patient_irritated",
)


def default_responder(body: dict) -> str:
    """A comparison gets "A"; a rating gives every axis the value 1."""
    user = body["messages"][-1]["content"]
    if '"answer"' in user:
        return json.dumps({"answer": "A"})
    return json.dumps(dict.fromkeys(AXES, 1))


def quoted_answer(body: dict) -> str:
    """The chatbot answer quoted in a rating prompt (between the second pair of <<< >>> markers)."""
    blocks = re.findall(r"<<<\n(.*?)\n>>>", body["messages"][1]["content"], flags=re.DOTALL)
    return blocks[1]


class ChatServer:
    def __init__(self, responder: Callable[[dict], str] = default_responder):
        self.responder = responder
        self.script: deque = deque()
        self.default = "ok"
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = server.script.popleft() if server.script else server.default
                server._act(self, action, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _act(self, handler: BaseHTTPRequestHandler, action, body: dict) -> None:
        kind = action if isinstance(action, str) else action[0]
        if kind == "stall":
            self._closing.wait()
            return
        if kind == "status":
            # the message repeats the credentials received, as some providers show (part of) a rejected key
            message = f"status {action[1]} for {handler.headers.get('authorization')}"
            payload = json.dumps({"error": {"message": message, "type": "test"}}).encode()
            self._send(handler, action[1], payload, action[2] if len(action) > 2 else {})
            return
        if kind == "garbage":
            self._send(handler, 200, b"<html>this is not json", {})
            return
        content = action[1] if kind == "content" else self.responder(body)
        completion = {
            "id": f"test-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send(handler, 200, json.dumps(completion).encode(), {})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict) -> None:
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass
