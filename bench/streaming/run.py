#!/usr/bin/env python3
"""Streamed POST /query on the local server (release build), against a loopback double of
Lambda's InvokeWithResponseStream (real eventstream frames). Prints:

  1. time to the first byte of the `decision` event, against the time of a whole GET /route
     answer (both on a fresh connection each, same process);
  2. added latency per forwarded chunk: the double writes each chunk with its write time
     (CLOCK_MONOTONIC, same machine) and the client notes when the chunk event arrives;
  3. the router's peak RSS while it streams a 50 MB answer, against its RSS when idle.

    cargo build --release && python3 bench/streaming/run.py [--router target/release/agent-router]

Standard library only; loopback only; every loop is bounded.
"""
import argparse
import http.server
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

CHUNK = 64 * 1024
BIG = 50 * 1024 * 1024
PACED_CHUNKS = 400
PACED_GAP_S = 0.002


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


def frame(event_type: str, content_type: str, payload: bytes) -> bytes:
    """One eventstream message: prelude (lengths + CRC32), headers, payload, message CRC32."""
    headers = (_header(":event-type", event_type) + _header(":message-type", "event")
               + _header(":content-type", content_type))
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def chunk(data: bytes) -> bytes:
    return frame("PayloadChunk", "application/octet-stream", data)


COMPLETE = frame("InvokeComplete", "application/json", b'{"LogResult":""}')


class Double(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _write(self, data: bytes):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        name = self.path.split("/")[3] if self.path.count("/") >= 4 else ""
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if name == "paced-agent":
            for _ in range(PACED_CHUNKS):
                time.sleep(PACED_GAP_S)
                self._write(chunk(b"%d " % time.monotonic_ns()))
        elif name == "big-agent":
            block = b"x" * CHUNK
            framed = chunk(block)
            for _ in range(BIG // CHUNK):
                self._write(framed)
        elif name == "first-after-agent":
            time.sleep(0.05)
            self._write(chunk(b"late"))
        self._write(COMPLETE)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def start_double():
    """The double runs in its own process, so that it never waits on this one's interpreter."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-double"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def serve_double():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Double)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Bounded: the benchmark takes well under this; the parent also ends it.
    time.sleep(600)


def request(port: int, head: str, body: bytes = b""):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(head.encode() + body)
    return s


def post_query(port: int, query: str):
    body = json.dumps({"query": query}).encode()
    head = ("POST /query HTTP/1.1\r\nhost: b\r\naccept: text/event-stream\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return request(port, head, body)


def read_json_answer(s, limit_s=10.0) -> bytes:
    """Reads one whole JSON answer (headers, then a body ending in a closing brace)."""
    s.settimeout(limit_s)
    buf = b""
    while not (b"\r\n\r\n" in buf and buf.rstrip().endswith(b"}")):
        data = s.recv(65536)
        if not data:
            break
        buf += data
    return buf


def read_until(s, marker: bytes, limit_s=10.0) -> bytes:
    s.settimeout(limit_s)
    buf = b""
    while marker not in buf:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    return buf


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def rss_kib(pid: int, field="VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", default="target/release/agent-router")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--serve-double", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_double:
        return serve_double()
    double, double_port = start_double()
    url = f"http://127.0.0.1:{double_port}"
    routes = open("prompts/routes.toml").read()
    for agent in ("cost-agent", "security-agent", "resources-agent"):
        routes = routes.replace(f'target = "{agent}"', f'target = "{agent}"\nstream = true', 1)
    tmp = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    tmp.write(routes)
    tmp.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, ROUTER_CONFIG=tmp.name, ROUTER_LLM="off", ROUTER_DISPATCH="on",
               AWS_ENDPOINT_URL_LAMBDA=url, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true",
               ROUTER_TARGET_COST="first-after-agent", ROUTER_TARGET_SECURITY="paced-agent",
               ROUTER_TARGET_RESOURCES="big-agent", ROUTER_AGENT_TIMEOUT_MS="120000",
               AWS_LAMBDA_LOG_LEVEL="WARN")
    router = subprocess.Popen([args.router, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        # Warm up both paths (the SDK client is built on the first dispatch).
        for _ in range(20):
            read_until(post_query(port, "What are my AWS costs?"), b"event: done")
            read_json_answer(request(port, "GET /route?q=What+are+my+AWS+costs HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n"))

        route_us, decision_us = [], []
        for _ in range(args.runs):
            t = time.perf_counter_ns()
            s = request(port, "GET /route?q=What+are+my+AWS+costs HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n")
            read_json_answer(s)
            route_us.append((time.perf_counter_ns() - t) / 1000)
            s.close()
            t = time.perf_counter_ns()
            s = post_query(port, "What are my AWS costs?")
            buf = read_until(s, b"event: decision")
            decision_us.append((time.perf_counter_ns() - t) / 1000)
            assert b"event: decision" in buf, buf[:200]
            read_until(s, b"event: done")
            s.close()
        print(f"1. GET /route whole answer (new connection): p50 {pct(route_us, 50):.0f} us, p99 {pct(route_us, 99):.0f} us")
        print(f"   decision event first byte (new connection): p50 {pct(decision_us, 50):.0f} us, p99 {pct(decision_us, 99):.0f} us"
              f"  (ratio of p50s {pct(decision_us, 50) / pct(route_us, 50):.2f})")

        lat_us = []
        for _ in range(3):
            s = post_query(port, "check my IAM permissions")
            s.settimeout(30)
            buf = b""
            while True:
                data = s.recv(65536)
                now = time.monotonic_ns()
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    if b"event: chunk" in event:
                        sent = int(event.split(b"data: ", 1)[1].split()[0])
                        lat_us.append((now - sent) / 1000)
        print(f"2. per forwarded chunk, double write -> client read over loopback ({len(lat_us)} chunks): "
              f"p50 {pct(lat_us, 50):.0f} us, p99 {pct(lat_us, 99):.0f} us, max {max(lat_us):.0f} us")

        idle = rss_kib(router.pid)
        s = post_query(port, "list my ec2 instances")
        s.settimeout(60)
        peak, got, t = idle, 0, time.perf_counter()
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += len(data)
            peak = max(peak, rss_kib(router.pid))
        secs = time.perf_counter() - t
        print(f"3. router RSS idle {idle / 1024:.1f} MiB, peak while streaming 50 MB {peak / 1024:.1f} MiB "
              f"(growth {(peak - idle) / 1024:.1f} MiB; VmHWM {rss_kib(router.pid, 'VmHWM') / 1024:.1f} MiB); "
              f"{got / 1e6:.1f} MB of events in {secs:.2f} s")
    finally:
        router.terminate()
        router.wait(timeout=10)
        double.terminate()
        double.wait(timeout=10)
        os.unlink(tmp.name)


if __name__ == "__main__":
    sys.exit(main())
