#!/usr/bin/env python3
"""http-load.py: a bounded load test of the agent's HTTP listener, loopback only.

    http-load.py HOST PORT SECONDS MAX_REQUESTS THREADS

Each thread opens a new connection per request and sends a mix of good and
bad requests (GET/HEAD/OPTIONS of every endpoint, POST, unknown paths, bad
query parameters, a body, an over-long URL, raw garbage). It stops after
SECONDS or MAX_REQUESTS in all, and prints one JSON object: the number of
requests, the count of each status code, and the failures (a connection
refused or reset, or a status outside the expected set for that request).
Exit 0 when every request got an expected answer, 1 otherwise.
"""
import http.client
import json
import socket
import sys
import threading
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
if HOST not in ("127.0.0.1", "::1", "localhost"):
    sys.exit("http-load.py: loopback only")
SECONDS, MAX_REQUESTS, THREADS = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

# (method, path, body, expected statuses)
REQUESTS = [
    ("GET", "/health", None, {200, 503}),
    ("GET", "/ready", None, {200, 503}),
    ("GET", "/primary", None, {200, 503}),
    ("HEAD", "/primary", None, {200, 503}),
    ("OPTIONS", "/replica", None, {200, 503}),
    ("GET", "/replica?lag=16MB", None, {200, 503}),
    ("GET", "/metrics", None, {200}),
    ("POST", "/ready", "x=1", {405}),
    ("DELETE", "/health", None, {405}),
    ("GET", "/nope", None, {404}),
    ("GET", "/replica?lag=abc", None, {400}),
    ("GET", "/health?x=1", None, {400}),
    ("GET", "/ready", "a body", {400}),
    ("GET", "/" + "a" * 20000, None, {414, 431, 400}),
]

lock = threading.Lock()
counts = {}
failures = []
sent = [0]
deadline = time.monotonic() + SECONDS


def take():
    with lock:
        if sent[0] >= MAX_REQUESTS or time.monotonic() > deadline:
            return None
        sent[0] += 1
        return sent[0]


def record(status, failure=None):
    with lock:
        counts[str(status)] = counts.get(str(status), 0) + 1
        if failure and len(failures) < 20:
            failures.append(failure)


def garbage():
    s = socket.create_connection((HOST, PORT), timeout=10)
    try:
        s.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
        s.recv(4096)
    except OSError:
        pass
    finally:
        s.close()
    record("garbage")


def one(n):
    method, path, body, expected = REQUESTS[n % len(REQUESTS)]
    if n % 97 == 0:
        garbage()
        return
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        resp.read()
        if resp.status not in expected:
            record(resp.status, "%s %s -> %d" % (method, path[:40], resp.status))
        else:
            record(resp.status)
    except (OSError, http.client.HTTPException) as e:
        record("error", "%s %s -> %s" % (method, path[:40], e))
    finally:
        conn.close()


def worker():
    while True:
        n = take()
        if n is None:
            return
        one(n)


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"requests": sent[0], "seconds": round(time.monotonic() - start, 1),
                  "statuses": counts, "failures": failures}))
sys.exit(1 if failures else 0)
