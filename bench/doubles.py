"""Loopback doubles for benchmarks: Bedrock Converse and Lambda Invoke, answering instantly.

Used by bench/coldstart (--llm) and bench/dispatch-overhead. Standard library only.
"""
import http.server
import json
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self.server.count += 1
        if self.path.startswith("/model/") and self.path.endswith("/converse"):
            out = json.dumps({
                "output": {"message": {"role": "assistant", "content": [{"text": self.server.answer}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 180, "outputTokens": 2, "totalTokens": 182},
                "metrics": {"latencyMs": 0},
            }).encode()
        elif self.path.startswith("/2015-03-31/functions/"):
            out = json.dumps({"answer": "ok", "received_bytes": len(body)}).encode()
        else:
            out = b'{"message": "unknown operation"}'
            self.send_response(404)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Double(http.server.ThreadingHTTPServer):
    """Serves both Converse and Invoke on one loopback port; `url` is its base URL."""

    daemon_threads = True

    def __init__(self, answer="general"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.count = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address):
        pass

    def env(self):
        """Environment that points the router's AWS clients at this double."""
        return {
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url, "AWS_ENDPOINT_URL_LAMBDA": self.url,
        }
