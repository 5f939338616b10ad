"""The example's API: Python's standard library only.

GET /hits     increments a counter in redis (raw RESP over a socket), records a
              visit in postgres (psql), answers {"hits": N, "visits": M, "started": T}
GET /healthz  200 once redis and postgres answer
"""
import json
import os
import socket
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8000"))
DB_HOST = os.environ.get("DB_HOST", "db")
CACHE_HOST = os.environ.get("CACHE_HOST", "cache")
# This process' start (its pid is always the same in its pid namespace).
STARTED = time.strftime("%H:%M:%S") + f".{time.time_ns() % 10**9:09d}"


def redis(*args):
    """One command, one reply (integers and simple strings only)."""
    request = f"*{len(args)}\r\n".encode()
    for a in args:
        a = str(a).encode()
        request += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection((CACHE_HOST, 6379), timeout=2) as s:
        s.sendall(request)
        reply = s.makefile("rb").readline().decode().strip()
    if reply[:1] == ":":
        return int(reply[1:])
    if reply[:1] == "+":
        return reply[1:]
    raise RuntimeError(f"redis: {reply}")


def psql(sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-tA", "-h", DB_HOST, "-U", "postgres", "-c", sql],
        capture_output=True, text=True, timeout=5,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr.strip()}")
    return out.stdout.strip()


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        try:
            if self.path == "/healthz":
                redis("PING")
                psql("select 1")
                self.answer(200, {"ok": True})
            elif self.path == "/hits":
                hits = redis("INCR", "hits")
                visits = psql(
                    "create table if not exists visits (id serial primary key, at timestamptz default now());"
                    "insert into visits default values;"
                    "select count(*) from visits"
                )
                self.answer(200, {"hits": hits, "visits": int(visits), "started": STARTED})
            else:
                self.answer(404, {"error": "not found"})
        except Exception as e:  # a dependency is down: say so, keep serving
            self.answer(503, {"error": str(e)})

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    print(f"api listening on :{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
