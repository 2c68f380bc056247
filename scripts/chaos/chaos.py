#!/usr/bin/env python3
"""The chaos suite: a real `hifc serve` (the synthetic model unless --model is among a
scenario's flags) attacked as a hostile user would, checked for wrong answers, failures and leaks.

  scripts/chaos/chaos.py --binary .build/debug/hifc --short        # CI: under a minute
  scripts/chaos/chaos.py --binary .build/release/hifc --long       # by hand: a few minutes

Scenarios (each starts its own server in a fresh data directory under --work):
  input          bad keys (401), invalid UTF-8, a seed of 2^70, GET on a POST route (405),
                 80,000 generations from one small body (400), a full queue (429 + Retry-After)
  fairness       p99 latency of a normal client alone, then while a hostile one floods the
                 server with the largest requests it may send (goal: within 2x; --long only,
                 being a measurement)
  connections    1,100 idle sockets with `ulimit -n 1024` while /health is polled; slowloris
                 headers; the RSS before, during and after connections each sending 4 MiB of a
                 body they never finish (goal: back within 10%)
  kill           kill -9 loops under load and during the first start; every answer checked
                 against greedy references; no partial model left behind
  flash          bytes flipped in the flash region under load, then injected EIO/ENOSPC/corrupt
                 reads (HIFC_CHAOS_FLASH_FAULTS); every answer checked
  shutdown       SIGTERM under load: in-flight requests end, the process exits within
                 --shutdown-timeout, the flash state is saved; a second signal exits at once

Only the standard library; every connection goes to 127.0.0.1. Prints one line per check and a
JSON summary (--json FILE); exits 1 if a check failed.
"""
import argparse
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

KEY = "chaos-key"
FAILURES = []
SUMMARY = {}


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        FAILURES.append(name)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_own_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One `hifc serve` process in its own data directory."""

    def __init__(self, binary, work, name, args=(), env=None, nofile=None, data_dir=None):
        # The synthetic model unless told otherwise: no network, tiny, written on first start.
        self.binary, self.args, self.nofile = binary, ([] if "--model" in args else ["--model", "synthetic"]) + list(args), nofile
        self.data_dir = data_dir or os.path.join(work, name)
        self.log_path = os.path.join(work, name + ".log")
        self.env = dict(os.environ, **(env or {}))
        self.port = free_port()
        self.process = None

    def start(self, wait=True, timeout=180):
        def limit():
            if self.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

        log = open(self.log_path, "ab")
        command = [self.binary, "serve", "--port", str(self.port), "--data-dir", self.data_dir] + self.args
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=limit)
        log.close()
        if wait:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
                try:
                    if request(self.port, "GET", "/health", timeout=2)[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            raise RuntimeError("the server did not answer /health in time:\n" + self.log()[-3000:])
        return self

    def rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def metrics(self):
        status, _, text = request(self.port, "GET", "/metrics", key=KEY, raw=True)
        values = {}  # by metric name, labelled series (one per engine replica, ...) summed
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                name = name.split("{", 1)[0]
                try:
                    values[name] = values.get(name, 0) + float(value)
                except ValueError:
                    pass
        return values

    def kill9(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def request(port, method, path, body=None, key=None, timeout=120, raw=False, headers=None):
    """(status, headers, parsed JSON body or text) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if key:
            all_headers["Authorization"] = "Bearer " + key
        if body is not None:
            if not isinstance(body, (bytes, bytearray)):
                body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        text = data.decode(errors="replace")
        if raw:
            return response.status, dict(response.getheaders()), text
        try:
            return response.status, dict(response.getheaders()), json.loads(text)
        except ValueError:
            return response.status, dict(response.getheaders()), text
    finally:
        connection.close()


def model_of(server):
    return request(server.port, "GET", "/v1/models", key=KEY)[2]["data"][0]["id"]


def completion(server, model, prompt, max_tokens, timeout=300, **extra):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    return request(server.port, "POST", "/v1/completions", body, key=KEY, timeout=timeout)


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


# MARK: input


def scenario_input(args):
    server = Server(args.binary, args.work, "input", ["--api-key", KEY, "--max-running", "1", "--max-queued-sequences", "4"]).start()
    try:
        model = model_of(server)
        port = server.port
        ok = {"model": model, "prompt": "hi", "max_tokens": 1}
        statuses = [request(port, "POST", "/v1/completions", ok, key=k)[0] for k in (None, "wrong", KEY[:-1], KEY + "x")]
        check("input: requests without the right key get 401", statuses == [401] * 4, str(statuses))
        check("input: /health needs no key", request(port, "GET", "/health")[0] == 200)
        check("input: the right key is served", request(port, "POST", "/v1/completions", ok, key=KEY)[0] == 200)
        bad_utf8 = b'{"model":"' + model.encode() + b'","prompt":["a\xff\xfe"]}'
        status, _, body = request(port, "POST", "/v1/completions", bad_utf8, key=KEY)
        check("input: invalid UTF-8 is named", status == 400 and "UTF-8" in body["error"]["message"], str(body)[:200])
        status, _, body = request(port, "POST", "/v1/completions", b'{"model":"%s","prompt":"a","seed":1180591620717411303424}' % model.encode(), key=KEY)
        check("input: a seed of 2^70 is out of range", status == 400 and body["error"]["param"] == "seed", str(body)[:200])
        status, headers, _ = request(port, "GET", "/v1/chat/completions", key=KEY)
        check("input: GET on a POST route is a 405 with Allow", status == 405 and headers.get("Allow") == "POST", f"{status} {headers}")
        start = time.time()
        huge = {"model": model, "prompt": [[1]] * 5000, "n": 16, "max_tokens": 1}
        status, _, body = request(port, "POST", "/v1/completions", huge, key=KEY)
        check(
            "input: 80,000 generations from one 25 KB body are refused at once",
            status == 400 and "--max-request-sequences" in body["error"]["message"] and time.time() - start < 5,
            f"{status} in {time.time() - start:.2f} s",
        )
        # One engine place (--max-running 1) and a queue of 4: a request of 64 sequences is let
        # in (an empty queue takes any request within the per-request limits) and fills it, so
        # the next one is refused. When the big request's client goes, its 63 waiting sequences
        # go with it and the next request is served at once.
        big = json.dumps({"model": model, "prompt": ["slow"] * 4, "n": 16, "max_tokens": 64, "temperature": 0}).encode()
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (KEY.encode(), len(big)) + big)
        time.sleep(0.3)
        status, headers, body = completion(server, model, "refused", 4)
        check("input: a full queue answers 429 with Retry-After", status == 429 and "Retry-After" in headers, f"{status} {headers.get('Retry-After')}")
        client.close()
        start = time.time()
        status = completion(server, model, "after", 4)[0]
        check(
            "input: a client that goes takes its queued work with it; the next request is served at once",
            status == 200 and time.time() - start < 5, f"{status} after {time.time() - start:.2f} s")
        check("input: no 5xx in the server's answers", "failed:" not in server.log(), "")
    finally:
        server.stop()


# MARK: fairness


def scenario_fairness(args):
    server = Server(args.binary, args.work, "fairness", ["--api-key", KEY] + args.fairness_flags).start()
    try:
        model = model_of(server)
        samples = 10 if args.short else args.fairness_samples

        def normal_latencies(count):
            latencies = []
            for i in range(count):
                start = time.time()
                status = completion(server, model, f"A normal question number {i}", 16)[0]
                latencies.append(time.time() - start)
                if status != 200:
                    check("fairness: the normal client is served", False, str(status))
            return latencies

        long_answer = min(1024, request(server.port, "GET", "/v1/models", key=KEY)[2]["data"][0]["max_model_len"] - 32)
        normal_latencies(3)  # warm up
        alone = normal_latencies(samples)
        stop = threading.Event()
        hostile = {"200": 0, "429": 0, "other": 0}
        lock = threading.Lock()

        def flood():
            # Near the largest request the default limits allow: 64 sequences, each as long as
            # the context lets it be.
            big = {"model": model, "prompt": ["Tell me everything about flash memory."] * 4, "n": 16, "max_tokens": long_answer, "temperature": 1}
            while not stop.is_set():
                try:
                    status = request(server.port, "POST", "/v1/completions", big, key=KEY, timeout=600)[0]
                except OSError:
                    status = -1
                with lock:
                    hostile[str(status) if status in (200, 429) else "other"] += 1
                if status == 429:
                    time.sleep(0.05)

        flooders = [threading.Thread(target=flood, daemon=True) for _ in range(args.hostile_clients)]
        for t in flooders:
            t.start()
        time.sleep(2)
        loaded = normal_latencies(samples)
        stop.set()
        for t in flooders:
            t.join(timeout=120)
        p99_alone, p99_loaded = percentile(alone, 99), percentile(loaded, 99)
        ratio = p99_loaded / p99_alone
        SUMMARY["fairness"] = {
            "normal_p50_alone_s": round(statistics.median(alone), 4),
            "normal_p99_alone_s": round(p99_alone, 4),
            "normal_p50_loaded_s": round(statistics.median(loaded), 4),
            "normal_p99_loaded_s": round(p99_loaded, 4),
            "p99_ratio": round(ratio, 2),
            "hostile_clients": args.hostile_clients,
            "hostile_requests": dict(hostile),
        }
        print(f"     fairness: {SUMMARY['fairness']}")
        if args.fairness_samples_file:
            # Every latency of the run, one JSON line a run, so that runs can be pooled: one
            # run's p99 of a few hundred samples moves with the machine's moment.
            with open(args.fairness_samples_file, "a") as f:
                f.write(json.dumps({"flags": args.fairness_flags, "hostile_clients": args.hostile_clients,
                                    "alone_s": alone, "loaded_s": loaded}) + "\n")
        check("fairness: the normal client is never refused or failed", True)
        check("fairness: hostile requests got only 200 or 429", hostile["other"] == 0, str(hostile))
        if not args.short:
            check("fairness: the normal client's p99 stays within 2x of its unloaded p99", ratio <= 2, f"{ratio:.2f}x")
    finally:
        server.stop()


# MARK: connections


def open_idle(port, count):
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            sockets.append(s)
        except OSError:
            s.close()
    return sockets


def body_storm(server, count):
    """Opens `count` connections that each send all but the last byte of a 4 MiB body, holds them
    while sampling the server's RSS, then closes them; returns the highest RSS seen."""
    chunk = b"x" * (4 << 20)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (KEY.encode(), len(chunk))
    sockets, lock = [], threading.Lock()

    def sender():
        s = socket.socket()
        try:
            s.settimeout(30)
            s.connect(("127.0.0.1", server.port))
            s.sendall(head)
            s.sendall(chunk[:-1])
        except OSError:
            pass
        with lock:
            sockets.append(s)

    threads = [threading.Thread(target=sender) for _ in range(count)]
    for t in threads:
        t.start()
    peak = server.rss_mib()
    while any(t.is_alive() for t in threads):
        peak = max(peak, server.rss_mib())
        time.sleep(0.05)
    for _ in range(10):
        peak = max(peak, server.rss_mib())
        time.sleep(0.1)
    for s in sockets:
        s.close()
    return peak


def settled_rss(server, seconds):
    """The server's RSS once it has not fallen for 12 s (the heap is trimmed a quiet second after
    a burst, and at most every 10 s), or after `seconds`."""
    last, stable_since = server.rss_mib(), time.time()
    deadline = time.time() + seconds
    while time.time() < deadline and time.time() - stable_since < 12:
        time.sleep(0.25)
        now = server.rss_mib()
        if os.environ.get("CHAOS_DEBUG"): print(f"     rss {now:.1f}", flush=True)
        if now < last - 0.5:
            stable_since = time.time()
        last = now
    return last


def scenario_connections(args):
    raise_own_fd_limit()
    idle_count = 1100
    server = Server(args.binary, args.work, "connections", ["--api-key", KEY, "--request-read-timeout", "2s"], nofile=1024).start()
    try:
        model = model_of(server)
        sockets = open_idle(server.port, idle_count)
        health = []
        for _ in range(20):
            start = time.time()
            try:
                status = request(server.port, "GET", "/health", timeout=10)[0]
            except OSError:
                status = -1
            health.append((status, time.time() - start))
        for s in sockets:
            s.close()
        worst = max(t for _, t in health)
        check(
            f"connections: /health answers under {len(sockets)} idle sockets with ulimit -n 1024",
            all(s == 200 for s, _ in health) and worst < 2,
            f"worst {worst * 1000:.0f} ms",
        )
        SUMMARY["idle_sockets"] = {"sockets": len(sockets), "health_ok": sum(s == 200 for s, _ in health), "health_worst_ms": round(worst * 1000)}

        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        start = time.time()
        slow.settimeout(10)
        try:
            while time.time() - start < 8:
                slow.sendall(b"a")  # a byte at a time keeps an idle timer alive, not the read deadline
                time.sleep(0.2)
            cut = False
        except OSError:
            cut = True
        slow.close()
        check("connections: a slowloris request is cut by the read timeout", cut, f"after {time.time() - start:.1f} s")

        # Connections each sending all but the last byte of a 4 MiB body (the --max-body-size
        # allowed) and then nothing. A smaller storm first warms the server up, so that the
        # first-use allocations of these paths count in "before" too (the cold figure is kept).
        cold = server.rss_mib()
        settle = 2 if args.short else 25
        body_storm(server, 8)
        before = settled_rss(server, settle)
        count = 24 if args.short else 250
        peak = body_storm(server, count)
        after = settled_rss(server, settle)
        status = completion(server, model, "still fine?", 4)[0]
        SUMMARY["body_storm"] = {
            "connections": count, "rss_cold_mib": round(cold, 1), "rss_before_mib": round(before, 1), "rss_peak_mib": round(peak, 1),
            "rss_after_mib": round(after, 1),
        }
        print(f"     body storm: {SUMMARY['body_storm']}")
        check("connections: the server answers after the body storm", status == 200)
        check("connections: the storm's bodies stay within --max-body-memory (64 MiB) and a margin", peak - before < 128, f"peak {peak:.1f} MiB")
        if not args.short:
            check("connections: RSS after the storm is back within 10% of before", after <= before * 1.1, f"{before:.1f} -> {peak:.1f} -> {after:.1f} MiB")
    finally:
        server.stop()


# MARK: kill


PROMPTS = [f"Story {i}: " + "once upon a time there was a " * (3 + i % 5) for i in range(12)]


def references(server, model, max_tokens, count=len(PROMPTS)):
    """Greedy answers to the first `count` prompts, each alone on an idle server."""
    return {p: completion(server, model, p, max_tokens)[2]["choices"][0]["text"] for p in PROMPTS[:count]}


class Load:
    """Clients sending greedy completions and checking each answer against its reference."""

    def __init__(self, server, model, refs, max_tokens, clients):
        self.server, self.model, self.refs, self.max_tokens = server, model, refs, max_tokens
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.checked = self.wrong = self.failed = 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            prompt = random.choice(list(self.refs))
            try:
                status, _, body = completion(self.server, self.model, prompt, self.max_tokens, timeout=120)
            except (OSError, http.client.HTTPException):
                continue  # the server was killed: not an answer
            with self.lock:
                if status == 200:
                    self.checked += 1
                    if body["choices"][0]["text"] != self.refs[prompt]:
                        self.wrong += 1
                elif status != 503:
                    self.failed += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=150)


def scenario_kill(args):
    data_dir = os.path.join(args.work, "kill-data")
    args_common = ["--api-key", KEY]
    server = Server(args.binary, args.work, "kill", args_common, data_dir=data_dir).start()
    model = model_of(server)
    refs = references(server, model, 24, 4 if args.short else len(PROMPTS))
    server.stop()
    cycles = 1 if args.short else 15
    survived = checked = wrong = failed = 0
    for cycle in range(cycles):
        server = Server(args.binary, args.work, "kill", args_common, data_dir=data_dir)
        try:
            server.start()
        except RuntimeError as error:
            check(f"kill: restart {cycle} after kill -9", False, str(error)[-500:])
            continue
        survived += 1
        load = Load(server, model, refs, 24, clients=6)
        # Kill at a random moment once the load is under way (a few answers checked).
        deadline = time.time() + 30
        while load.checked < 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0, 1.5))
        server.kill9()
        load.finish()
        checked, wrong, failed = checked + load.checked, wrong + load.wrong, failed + load.failed
    # Killed during its first start, while it writes its model.
    partial_kills = 1 if args.short else 8
    clean_starts = 0
    for i in range(partial_kills):
        fresh = os.path.join(args.work, f"kill-first-start-{i}")
        server = Server(args.binary, args.work, f"kill-first-start-{i}", args_common, data_dir=fresh).start(wait=False)
        time.sleep(random.uniform(0.05, 0.6))
        server.kill9()
        server = Server(args.binary, args.work, f"kill-first-start-{i}", args_common, data_dir=fresh).start()
        leftovers = [n for n in os.listdir(os.path.join(fresh, "models")) if ".partial-" in n] if os.path.isdir(os.path.join(fresh, "models")) else []
        clean_starts += completion(server, model_of(server), PROMPTS[0], 8)[0] == 200 and not leftovers
        server.stop()
    SUMMARY["kill"] = {
        "cycles": cycles, "restarts_survived": survived, "answers_checked": checked, "wrong_answers": wrong,
        "failed_requests": failed, "first_start_kills": partial_kills, "clean_restarts_after_first_start_kill": clean_starts,
    }
    print(f"     kill: {SUMMARY['kill']}")
    check("kill: every restart after kill -9 came up", survived == cycles, f"{survived}/{cycles}")
    check("kill: no wrong answer", wrong == 0 and checked > 0, f"{wrong} wrong of {checked}")
    check("kill: no failed request (only 200, or a connection cut by the kill)", failed == 0, str(failed))
    check("kill: a start killed while writing its model leaves nothing behind", clean_starts == partial_kills, f"{clean_starts}/{partial_kills}")


# MARK: flash


def region_files(data_dir):
    found = []
    for root, _, files in os.walk(os.path.join(data_dir, "flash")):
        found += [os.path.join(root, f) for f in files if os.path.getsize(os.path.join(root, f)) > (1 << 20)]
    return found


def flash_trouble(metrics):
    """Flash failures the server met and recovered from: failed swaps (writes or reads) and reads
    that came back damaged or failed (swap-ins and prefix-cache loads alike)."""
    return metrics.get("hifc_swap_failures_total", 0) + metrics.get("hifc_flash_corrupt_or_failed_reads", 0)


def scenario_flash(args):
    seconds = 3 if args.short else 60
    data_dir = os.path.join(args.work, "flash-data")
    # Half the default KV budget: 8 clients' sequences do not fit, so they swap all the time.
    flags = ["--api-key", KEY, "--flash-capacity", "32MiB", "--flash-segment-size", "1MiB", "--kv-budget", "128KiB"]
    server = Server(args.binary, args.work, "flash", flags, data_dir=data_dir).start()
    tokens = 48 if args.short else 120
    try:
        model = model_of(server)
        refs = references(server, model, tokens, 4 if args.short else len(PROMPTS))
        before = server.metrics()
        load = Load(server, model, refs, tokens, clients=8)
        flips = 0
        deadline = time.time() + seconds
        regions = region_files(data_dir)
        while time.time() < deadline and regions:
            for path in regions:
                size = os.path.getsize(path)
                fd = os.open(path, os.O_RDWR)
                try:
                    for _ in range(64):
                        offset = random.randrange(size)
                        byte = os.pread(fd, 1, offset)
                        os.pwrite(fd, bytes([byte[0] ^ 0xFF]), offset)
                        flips += 1
                finally:
                    os.close(fd)
            time.sleep(0.05)
        load.finish()
        after = server.metrics()
        detected = flash_trouble(after) - flash_trouble(before)
        swaps = after.get("hifc_swap_outs_total", 0) - before.get("hifc_swap_outs_total", 0)
        SUMMARY["flips"] = {
            "seconds": seconds, "bytes_flipped": flips, "swap_outs": swaps, "flash_failures_detected": detected,
            "answers_checked": load.checked, "wrong_answers": load.wrong, "failed_requests": load.failed,
        }
        print(f"     flips: {SUMMARY['flips']}")
        check("flash: the region was found and flipped", flips > 0 and swaps > 0, f"{flips} bytes, {swaps} swap-outs")
        check("flash: no wrong answer with flipped bytes", load.wrong == 0 and load.checked > 0, f"{load.wrong} wrong of {load.checked}")
        check("flash: no failed request with flipped bytes", load.failed == 0, str(load.failed))
    finally:
        server.stop()

    faults = "write-eio=0.05,write-enospc=0.05,read-eio=0.05,corrupt=0.05"
    server = Server(args.binary, args.work, "faults", flags, data_dir=data_dir, env={"HIFC_CHAOS_FLASH_FAULTS": faults}).start()
    try:
        before = server.metrics()
        load = Load(server, model, refs, tokens, clients=8)
        time.sleep(seconds)
        load.finish()
        after = server.metrics()
        failures = flash_trouble(after) - flash_trouble(before)
        SUMMARY["io_faults"] = {
            "faults": faults, "seconds": seconds, "flash_failures_recovered": failures,
            "answers_checked": load.checked, "wrong_answers": load.wrong, "failed_requests": load.failed,
        }
        print(f"     io faults: {SUMMARY['io_faults']}")
        check("flash: injected EIO/ENOSPC/corruption were met", failures > 0, str(failures))
        check("flash: no wrong answer under I/O faults", load.wrong == 0 and load.checked > 0, f"{load.wrong} wrong of {load.checked}")
        check("flash: no failed request under I/O faults", load.failed == 0, str(load.failed))
    finally:
        server.stop()


# MARK: shutdown


def scenario_shutdown(args):
    # One engine place and more work than it can finish before the signals: a release build
    # answered whole 16-choice requests within the 2 s when they had two places.
    flags = ["--api-key", KEY, "--max-running", "1"]
    server = Server(args.binary, args.work, "shutdown", flags + ["--shutdown-timeout", "2s"]).start()
    model = model_of(server)
    context = request(server.port, "GET", "/v1/models", key=KEY)[2]["data"][0]["max_model_len"]
    statuses = []

    def long_request():
        # 16 long choices through 1 engine place, beside the other requests': far more than the
        # 2 s the shutdown allows.
        try:
            statuses.append(completion(server, model, "a very long answer", context - 64, n=16, timeout=60)[0])
        except (OSError, http.client.HTTPException) as error:
            statuses.append(str(error))

    threads = [threading.Thread(target=long_request) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1)
    start = time.time()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=30)
    elapsed = time.time() - start
    for t in threads:
        t.join()
    log = server.log()
    check("shutdown: SIGTERM under load exits 0 within the timeout and its margin", code == 0 and elapsed < 8, f"exit {code} after {elapsed:.1f} s")
    check("shutdown: in-flight requests were answered (503 at the deadline)", statuses and all(s == 503 for s in statuses), str(statuses))
    check("shutdown: the log says what was done", "aborted" in log and "flash state saved" in log, "")

    server = Server(args.binary, args.work, "shutdown-twice", flags + ["--shutdown-timeout", "60s"]).start()
    threads = [threading.Thread(target=long_request) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    start = time.time()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=30)
    for t in threads:
        t.join()
    check("shutdown: a second SIGTERM exits at once", code == 128 + signal.SIGTERM and time.time() - start < 2, f"exit {code}")
    SUMMARY["shutdown"] = {"graceful_seconds": round(elapsed, 2), "second_signal_exit": code}


SCENARIOS = {
    "input": scenario_input,
    "fairness": scenario_fairness,
    "connections": scenario_connections,
    "kill": scenario_kill,
    "flash": scenario_flash,
    "shutdown": scenario_shutdown,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the hifc executable")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--short", action="store_true", help="the CI form (under a minute)")
    length.add_argument("--long", action="store_true", help="the full form (several minutes)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run only these (repeatable)")
    parser.add_argument("--work", help="scratch directory (default: a new temporary one, removed after)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--hostile-clients", type=int, default=1, help="concurrent hostile clients in the fairness scenario")
    parser.add_argument("--fairness-samples", type=int, default=60, help="normal requests timed alone and again under the flood (long form)")
    parser.add_argument("--fairness-samples-file", default=None,
                        help="append the fairness scenario's latencies (alone and loaded) to FILE as one JSON line a run")
    parser.add_argument("--fairness-flags", default="", help="extra `hifc serve` flags for the fairness scenario (e.g. '--kv-budget 16MiB')")
    args = parser.parse_args()
    args.short = not args.long
    args.fairness_flags = args.fairness_flags.split()
    keep = args.work is not None
    args.work = args.work or tempfile.mkdtemp(prefix="hifc-chaos-")
    os.makedirs(args.work, exist_ok=True)
    started = time.time()
    try:
        default = [name for name in SCENARIOS if not (args.short and name == "fairness")]
        for name in args.scenario or default:
            began = time.time()
            try:
                SCENARIOS[name](args)
                print(f"     {name}: {time.time() - began:.1f} s", flush=True)
            except Exception as error:  # a crashed scenario is a failed check, and the others still run
                check(f"{name}: ran to its end", False, f"{type(error).__name__}: {error}")
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)
    SUMMARY["seconds"] = round(time.time() - started, 1)
    SUMMARY["failed_checks"] = FAILURES
    if args.json:
        with open(args.json, "w") as f:
            json.dump(SUMMARY, f, indent=2)
    print(f"chaos: {len(FAILURES)} failed check(s) in {SUMMARY['seconds']} s")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
