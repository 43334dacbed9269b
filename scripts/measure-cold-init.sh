#!/usr/bin/env bash
# Cold-init time of each Lambda function, measured on this machine: from spawning the
# (host, release) binary to its first `GET /2018-06-01/runtime/invocation/next` on a
# fake Lambda Runtime API — i.e. process start + App::from_env (config, signing keys,
# AWS SDK clients) + runtime start. The same figure for a baseline binary that only does
# that GET (no tokio, no SDK, no app) is measured in the same run, and every result is
# also given as a ratio to it, so numbers from different machines can be compared.
#
#   scripts/measure-cold-init.sh [function ...]      (default: all eight)
#
# Env: RUNS (per binary, default 20), SKIP_BUILD=1 (reuse target/release/<name>).
# Needs: Rust, Python 3. Nothing leaves 127.0.0.1; the credentials and keys are dummies.
# What it is not: Lambda's own cold start (download + Firecracker + arm64 on Graviton);
# this isolates the part our code controls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

functions=("$@")
[ ${#functions[@]} -gt 0 ] || functions=(connect disconnect default deliver http publish stream sweeper)
runs="${RUNS:-20}"
work="$(mktemp -d "${TMPDIR:-/tmp}/sockhop-cold-init.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  pkgs=()
  for f in "${functions[@]}"; do pkgs+=(-p "sockhop-$f"); done
  echo "==> cargo build --release ${pkgs[*]}" >&2
  cargo build --release "${pkgs[@]}" >&2
fi

# Baseline: a std-only Rust binary that connects to the runtime API and sends the same
# GET, with no async runtime and no application init.
cat >"$work/baseline.rs" <<'RS'
use std::io::{Read, Write};
fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    let mut s = std::net::TcpStream::connect(&api).expect("connect");
    write!(s, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
    let mut buf = [0u8; 1];
    let _ = s.read(&mut buf);
}
RS
rustc -O --edition 2021 -o "$work/baseline" "$work/baseline.rs"

bins=()
for f in "${functions[@]}"; do
  [ -x "target/release/$f" ] || { echo "target/release/$f is missing (build it or drop SKIP_BUILD)" >&2; exit 1; }
  bins+=("$f=target/release/$f")
done

echo "==> $runs runs per binary, round-robin, on $(nproc 2>/dev/null || echo '?') cores" >&2
RUNS="$runs" python3 - "$work/baseline" "${bins[@]}" <<'PY'
import base64, os, statistics, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

runs = int(os.environ["RUNS"])
baseline = ("baseline", sys.argv[1])
targets = [tuple(a.split("=", 1)) for a in sys.argv[2:]]

state = {"arrived": None, "event": threading.Event(), "release": threading.Event()}

class Runtime(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/2018-06-01/runtime/invocation/next":
            if not state["event"].is_set():
                state["arrived"] = time.perf_counter_ns()
                state["event"].set()
            # Hold the request, as Lambda does between invocations; the process is
            # killed before it would get an event.
            state["release"].wait(10)
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()
    def do_POST(self):
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # the killed process's socket is gone; nothing to report

server = Server(("127.0.0.1", 0), Runtime)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

empty = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sockhop-cold-init-nonexistent")
def env_for(name):
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": f"sockhop-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_LOG_STREAM_NAME": "measure",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/sockhop-{name}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # dummies, as Lambda hands a role's session credentials in the environment
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "dummy",
        "AWS_CONFIG_FILE": empty,
        "AWS_SHARED_CREDENTIALS_FILE": empty,
        # the function configuration (dev-only values)
        "TABLE_NAME": "x",
        "SIGNING_KEY_1_METHOD": "HS256",
        "SIGNING_KEY_1_ENCODED": base64.b64encode(b"dev-only-measure-key").decode(),
        "CONNECTION_SECRET_KEY": base64.b64encode(bytes(32)).decode(),
        "WEBSOCKET_MANAGEMENT_ENDPOINT": "http://127.0.0.1:1",
    }

def once(name, path):
    state["event"].clear(); state["release"].clear(); state["arrived"] = None
    env = env_for(name)
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([path], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    got = state["event"].wait(15)
    proc.kill()
    state["release"].set()
    _, err = proc.communicate()
    if not got:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"{name}: no GET /next within 15s (exit {proc.returncode}): {' | '.join(tail)}")
    return (state["arrived"] - t0) / 1e6

everything = [baseline] + targets
for name, path in everything:      # warm-up: page cache, first-exec costs
    once(name, path)
samples = {name: [] for name, _ in everything}
for _ in range(runs):
    for name, path in everything:  # round-robin, so drift hits every binary alike
        samples[name].append(once(name, path))
server.shutdown()

def p90(xs):
    s = sorted(xs)
    return s[max(0, -(-len(s) * 9 // 10) - 1)]   # nearest rank

base_med = statistics.median(samples["baseline"])
base_p90 = p90(samples["baseline"])
print(f"{'binary':<10} {'size MiB':>9} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'x base (med)':>13} {'x base (p90)':>13}")
for name, path in everything:
    xs = samples[name]
    med, q = statistics.median(xs), p90(xs)
    size = os.path.getsize(path) / 1048576
    print(f"{name:<10} {size:>9.2f} {med:>10.2f} {q:>8.2f} {min(xs):>8.2f} {med / base_med:>13.1f} {q / base_p90:>13.1f}")
print(f"({runs} runs each after one warm-up; baseline = std-only binary doing the same GET)")
PY
