"""A scripted "model" on loopback for driving real agent CLIs offline.

It speaks just enough of three wire formats: Anthropic Messages (Claude Code), OpenAI Responses
(Codex) and OpenAI Chat Completions (Cline CLI), each streamed as server-sent events. Each
request gets the next shell tool call from `commands` (one per tool result already in the
conversation), then a final text "DONE". Every tool result the agent sends back is recorded, so
a test can assert what the tool really ran and what it printed. Shapes: shared notes
`agent-clis.md` (what each CLI sent and accepted).

    python -m testing.agent_mock PORT COMMANDS_JSON LOG_JSONL
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Script:
    def __init__(self, commands: list[str], log: Path):
        self.commands = commands
        self.log = log
        self.lock = threading.Lock()

    def record(self, kind: str, data: Any) -> None:
        with self.lock, self.log.open("a") as f:
            f.write(json.dumps({"kind": kind, "data": data}) + "\n")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(c.get("text", c.get("content", ""))) if isinstance(c, dict)
                       else str(c) for c in content)
    return str(content)


def anthropic_results(body: dict[str, Any]) -> list[str]:
    out = []
    for msg in body.get("messages", []):
        if msg.get("role") == "user" and isinstance(msg.get("content"), list):
            out += [_text_of(b.get("content", "")) for b in msg["content"]
                    if isinstance(b, dict) and b.get("type") == "tool_result"]
    return out


def responses_results(body: dict[str, Any]) -> list[str]:
    return [_text_of(i.get("output", "")) for i in body.get("input", [])
            if isinstance(i, dict) and i.get("type") == "function_call_output"]


def chat_results(body: dict[str, Any]) -> list[str]:
    return [_text_of(m.get("content", "")) for m in body.get("messages", [])
            if isinstance(m, dict) and m.get("role") == "tool"]


def _sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def anthropic_reply(body: dict[str, Any], command: str | None, n: int) -> bytes:
    model = body.get("model", "mock")
    usage = {"input_tokens": 10, "output_tokens": 5}
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": f"msg_{n}", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})]
    if command is not None:
        args = json.dumps({"command": command, "description": "run the test command"})
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": f"toolu_{n:04d}", "name": "Bash", "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": args}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 5}})]
    else:
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "DONE"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 5}})]
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


def responses_reply(command: str | None, n: int) -> bytes:
    if command is not None:
        item: dict[str, Any] = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}",
                                "name": "exec_command", "arguments": json.dumps({"cmd": command})}
    else:
        item = {"type": "message", "role": "assistant", "id": f"msg_{n}", "content": [
            {"type": "output_text", "text": "DONE", "annotations": []}]}
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 15}
    return _sse([
        ("response.created", {"type": "response.created", "response": {"id": f"resp_{n}"}}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                       "item": item}),
        ("response.completed", {"type": "response.completed",
                                "response": {"id": f"resp_{n}", "usage": usage}})])


def chat_reply(command: str | None, n: int) -> bytes:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 0,
            "model": "mock-model"}
    if command is not None:
        call = {"index": 0, "id": f"call_{n}", "type": "function", "function": {
            "name": "run_commands", "arguments": json.dumps({"commands": [command]})}}
        chunks: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None,
                                                        "tool_calls": [call]},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
    else:
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "DONE"},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                                    "total_tokens": 15}})
    return _sse([(None, c) for c in chunks] + [(None, "[DONE]")])


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def do_GET(self) -> None:
            if "models" in self.path:
                self._send(200, json.dumps({"object": "list", "data": [
                    {"id": "mock-model", "object": "model"}]}).encode())
            else:
                self._send(200, b"{}")

        def do_HEAD(self) -> None:
            self._send(200, b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, b'{"error": "bad json"}')
                return
            path = self.path.split("?")[0]
            if path.endswith("/count_tokens"):
                self._send(200, b'{"input_tokens": 10}')
                return
            if path.endswith("/messages"):
                results = anthropic_results(body)
            elif path.endswith("/responses"):
                results = responses_results(body)
            elif path.endswith("/chat/completions"):
                results = chat_results(body)
            else:
                self._send(404, b'{"error": "unknown path"}')
                return
            n = len(results)
            if results:
                script.record("tool_result", {"path": path, "index": n - 1,
                                              "text": results[-1]})
            command = script.commands[n] if n < len(script.commands) else None
            script.record("request", {"path": path, "answered": command})
            if path.endswith("/messages"):
                if not body.get("stream"):
                    self._send(200, json.dumps({
                        "id": f"msg_{n}", "type": "message", "role": "assistant",
                        "model": body.get("model", "mock"), "content": [
                            {"type": "text", "text": "DONE"}], "stop_reason": "end_turn",
                        "usage": {"input_tokens": 10, "output_tokens": 5}}).encode())
                    return
                payload = anthropic_reply(body, command, n)
            elif path.endswith("/responses"):
                payload = responses_reply(command, n)
            else:
                payload = chat_reply(command, n)
            self._send(200, payload, "text/event-stream")

    return Handler


def serve(port: int, commands: list[str], log: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(Script(commands, log)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    port, commands, log = int(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
    server = serve(port, commands, Path(log))
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
