#!/usr/bin/env python3
"""Load test of a running `hifc serve`: N concurrent clients, each sending streaming chat
completions back to back for M seconds. Reports failures (the goal is none), requests and tokens
per second, time to first token, the server's resident memory (RSS) before and after, and the
engine's swap and preemption counters from /metrics.

Usage:
  bench/server-load.py --url http://127.0.0.1:8000 --pid SERVER_PID --clients 8 --seconds 60

Only the standard library; traffic goes only to --url (use a loopback address). Every client
stops by itself after --seconds.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metrics(url):
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            number = float(value)
        except ValueError:
            continue
        values[name] = number
        if "{" in name:  # labelled (the engine's carry replica="N"): also summed under the bare name
            base = name.split("{", 1)[0]
            values[base] = values.get(base, 0) + number
    return values


def model_name(url):
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    connection.request("GET", "/v1/models")
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body["data"][0]["id"]


class Client(threading.Thread):
    def __init__(self, index, url, model, deadline, max_tokens):
        super().__init__(daemon=True)
        self.index, self.url, self.model, self.deadline, self.max_tokens = index, url, model, deadline, max_tokens
        self.requests = self.tokens = 0
        self.failures = []
        self.ttfts = []
        self.latencies = []

    def run(self):
        parsed = urllib.parse.urlparse(self.url)
        n = 0
        while time.monotonic() < self.deadline:
            n += 1
            body = json.dumps({
                "model": self.model, "stream": True, "max_tokens": self.max_tokens,
                "stream_options": {"include_usage": True}, "seed": self.index * 100_000 + n,
                "messages": [{"role": "user", "content": f"Client {self.index}, request {n}: tell me a long story."}],
            })
            start = time.monotonic()
            try:
                connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
                connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                if response.status != 200:
                    self.failures.append(f"HTTP {response.status}: {response.read()[:200]!r}")
                    connection.close()
                    continue
                first, done, usage = None, False, None
                for raw in response:
                    line = raw.decode().strip()
                    if not line.startswith("data: "):
                        continue
                    payload = line[6:]
                    if payload == "[DONE]":
                        done = True
                        break
                    event = json.loads(payload)
                    if "error" in event:
                        self.failures.append(f"error event: {event['error']}")
                        break
                    if first is None and any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                        first = time.monotonic() - start
                    if event.get("usage"):
                        usage = event["usage"]
                connection.close()
                if not done or usage is None:
                    if done:
                        self.failures.append("stream ended without usage")
                    elif not self.failures:
                        self.failures.append("stream ended without [DONE]")
                    continue
                self.requests += 1
                self.tokens += usage["completion_tokens"]
                self.latencies.append(time.monotonic() - start)
                if first is not None:
                    self.ttfts.append(first)
            except Exception as error:  # a failure to count, not to stop on
                self.failures.append(f"{type(error).__name__}: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, required=True, help="the server's process id, for its RSS")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    host = urllib.parse.urlparse(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be a loopback address")

    model = model_name(args.url)
    before_rss, before = rss_mib(args.pid), metrics(args.url)
    deadline = time.monotonic() + args.seconds
    clients = [Client(i, args.url, model, deadline, args.max_tokens) for i in range(args.clients)]
    started = time.monotonic()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.monotonic() - started
    time.sleep(1)
    after_rss, after = rss_mib(args.pid), metrics(args.url)

    failures = [f for c in clients for f in c.failures]
    requests = sum(c.requests for c in clients)
    tokens = sum(c.tokens for c in clients)
    ttfts = sorted(t for c in clients for t in c.ttfts)
    latencies = sorted(t for c in clients for t in c.latencies)

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    print(f"model {model}, {args.clients} concurrent streaming clients for {args.seconds:.0f} s (max_tokens {args.max_tokens})")
    print(f"requests completed: {requests}, failures: {len(failures)}")
    for f in failures[:10]:
        print(f"  failure: {f}")
    print(f"throughput: {requests / elapsed:.2f} requests/s, {tokens / elapsed:.1f} generated tokens/s over {elapsed:.1f} s")
    if ttfts:
        p95 = ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))]
        print(f"time to first token: median {statistics.median(ttfts):.3f} s, p95 {p95:.3f} s")
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        print(f"request latency: median {statistics.median(latencies):.3f} s, p99 {p99:.3f} s")
    print(f"server RSS: {before_rss:.1f} MiB before, {after_rss:.1f} MiB after")
    for name in ("hifc_preemptions_total", "hifc_swap_outs_total", "hifc_swap_ins_total",
                 "hifc_flash_bytes_written_total", "hifc_swap_failures_total"):
        print(f"{name}: +{delta(name):.0f}")
    replicas = sorted(k for k in after if k.startswith("hifc_router_requests_total{"))
    if replicas:  # a data-parallel server: how the router split the requests
        print("router: " + ", ".join(f"{k[k.index('{'):]} +{delta(k):.0f}" for k in replicas))
    print(f"hifc_http_requests_in_flight after: {after.get('hifc_http_requests_in_flight', float('nan')):.0f}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
