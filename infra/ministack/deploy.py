"""Deploys the shipped template.yaml to MiniStack, a local AWS emulator, with IAM enforced.

Run by scripts/emulated-deploy.sh after it built the eight functions for this machine and
wrote the prebuilt-bootstrap template (scripts/prebuilt-template.py, the same rewrite a
user's `sam deploy --template-file target/lambda/template.yaml` deploys). This script:

  1. starts MiniStack on a free loopback port with AUTH=true (every function runs as its
     own role, every call is checked against it) and AWS_ENDPOINT_URL pointing at itself,
     so the functions' SDK calls reach it;
  2. runs `sam deploy` (SAM CLI from infra/lint's venv) against it: the code is zipped into
     its S3, the template goes through CloudFormation and the SAM transform;
  3. prints the stack's outputs with the emulator's URLs, and writes them (with this run's
     DEV-ONLY keys) to a JSON file the tests against the deployment read;
  4. with --wait (the default), keeps MiniStack up until Ctrl-C / SIGTERM, then stops it
     and every bootstrap it spawned.

Every key is generated per run and marked dev-only; nothing here reaches real AWS (the
credentials are MiniStack's root ones, `test`/`test`).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REGION = "us-east-1"
STACK = "sockhop"
BUCKET = "sockhop-emulated-code"
# MiniStack's root credentials: any other key is an IAM user or role it checks.
ROOT_KEY = ("test", "test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list:
    """Every live process below pid (MiniStack's warm bootstraps outlive a stack)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                # comm may hold spaces and parentheses: the ppid follows the last ')'.
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    below = descendants(proc.pid)
    for pid in [proc.pid] + below:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# The only variables of the caller's environment MiniStack and SAM CLI see. MiniStack
# spawns each bootstrap with its own environment plus the function's, so anything else
# leaks into the deployed functions: scripts/test.sh exports DYNAMODB_ENDPOINT and
# SQS_ENDPOINT for the local tests, and a function that inherits them talks to
# DynamoDB Local and moto instead of the stack's own table and queues.
KEPT_FROM_CALLER = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR",
                    "SSL_CERT_FILE", "SSL_CERT_DIR", "RUST_BACKTRACE")


def aws_env(endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in KEPT_FROM_CALLER or k.startswith("LC_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=ROOT_KEY[0],
        AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
        SAM_CLI_DISABLE_VERSION_CHECK="1",
    )
    return env


def start_ministack(venv: str, port: int, workdir: str) -> subprocess.Popen:
    endpoint = f"http://127.0.0.1:{port}"
    env = aws_env(endpoint)
    env.update(
        GATEWAY_PORT=str(port),
        BIND_HOST="127.0.0.1",
        MINISTACK_HOST="127.0.0.1",
        MINISTACK_REGION=REGION,
        AUTH="true",
        # The functions' lambda_runtime logs: plain text for the log files the tests read.
        NO_COLOR="1",
        RUST_LOG=os.environ.get("RUST_LOG", "info"),
    )
    log = open(os.path.join(workdir, "ministack.log"), "w", encoding="utf-8")
    proc = subprocess.Popen(
        [os.path.join(venv, "bin", "python"), "-m", "ministack"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"MiniStack exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"MiniStack did not answer on {endpoint} within 60 s; see {log.name}")


def dev_keys() -> dict:
    """This run's DEV-ONLY secrets: random, never committed, gone with the run (the
    HTTP API keys the stack generates itself)."""
    return {
        "signingKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        "connectionSecretKey": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def host_architecture() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def sam_deploy(sam: str, template: str, endpoint: str, keys: dict, workdir: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                 aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1]
                 ).create_bucket(Bucket=BUCKET)
    overrides = {
        "SigningKey1MethodParameter": "HS256",
        "SigningKey1EncodedParameter": keys["signingKey"],
        "ConnectionSecretKeyParameter": keys["connectionSecretKey"],
        # No explicit HTTP API key: the stack generates its two (read below).
        # What must differ on an emulator is a parameter, defaults right for AWS.
        "FunctionArchitectureParameter": host_architecture(),
        "ManagementApiBaseUrlParameter": f"{endpoint}/_aws/execute-api",
        # Backend events on, so the tests can read them from the bus and the topic.
        "PublishEventsToEventBridgeParameter": "enabled",
        "PublishEventsToSNSParameter": "enabled",
        # Plain-text function logs at INFO and the Lambda service's START/END lines,
        # so ministack.log and the log groups show what ran.
        "SystemLogLevelParameter": "INFO",
    }
    command = [
        sam, "deploy",
        "--template-file", template,
        "--stack-name", STACK,
        "--s3-bucket", BUCKET,
        "--region", REGION,
        "--capabilities", "CAPABILITY_IAM",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
        "--parameter-overrides",
        *[f"{k}={v}" for k, v in overrides.items()],
    ]
    log_path = os.path.join(workdir, "sam-deploy.log")
    with open(log_path, "w", encoding="utf-8") as log:
        status = subprocess.call(command, env=aws_env(endpoint), stdout=log,
                                 stderr=subprocess.STDOUT, cwd=os.path.dirname(template))
    if status != 0:
        with open(log_path, encoding="utf-8") as log:
            sys.stderr.write(log.read()[-6000:])
        raise SystemExit(f"sam deploy failed ({status}); see {log_path}")


def outputs(endpoint: str, keys: dict, port: int) -> dict:
    import boto3

    session = boto3.Session(aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                            region_name=REGION)
    cfn = session.client("cloudformation", endpoint_url=endpoint)
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    # AWS's URLs as the stack states them, and where the emulator serves them
    # (path-style: it has no DNS for {api}.execute-api... or {id}.lambda-url...).
    wss = out["WebSocketsAwsWssUrl"]
    api_id = wss.split("//", 1)[1].split(".", 1)[0]
    stage = wss.rstrip("/").rsplit("/", 1)[1]
    url_id = out["HttpApiUrl"].split("//", 1)[1].split(".", 1)[0]
    # The HTTP API keys the stack generated, as an operator reads them through
    # the HttpApiSecretKey1ConsoleUrl output.
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    keys = dict(keys)
    keys["apiKey"] = secrets.get_secret_value(SecretId=resources["HttpApiSecretKey1"])["SecretString"]
    keys["apiKey2"] = secrets.get_secret_value(SecretId=resources["HttpApiSecretKey2"])["SecretString"]
    return {
        "endpoint": endpoint,
        "port": port,
        "region": REGION,
        "stackName": STACK,
        "rootCredentials": list(ROOT_KEY),
        "stackOutputs": out,
        "resources": resources,
        "webSocketUrl": f"ws://127.0.0.1:{port}/_aws/execute-api/{api_id}/{stage}",
        "httpApiUrl": f"{endpoint}/_aws/lambda-url/{url_id}/",
        "devOnlyKeys": keys,
    }


def dev_token(signing_key_b64: str, claims: dict) -> str:
    """An HS256 connect token signed with this run's DEV-ONLY key."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(base64.b64decode(signing_key_b64), f"{header}.{payload}".encode(),
                         hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def describe(o: dict) -> str:
    token = dev_token(o["devOnlyKeys"]["signingKey"], {
        "scope": "connect", "exp": int(time.time()) + 3600, "uid": "dev",
        "channels": {"*": {"subscribe": True,
                           "messages": {"*": {"publish": True, "echo": True, "store": 3600}}}},
    })
    lines = [
        "",
        "  Sockhop on MiniStack (emulated AWS, IAM enforced)",
        f"  WebSocket URL    {o['webSocketUrl']}",
        f"  HTTP API URL     {o['httpApiUrl']}",
        f"  Publish function {o['stackOutputs']['PublishFunctionArn']}",
        f"  Table            {o['stackOutputs']['TableName']}",
        f"  AWS endpoint     {o['endpoint']}  (credentials test/test, region {o['region']})",
        "  Stack outputs (as AWS would state them):",
    ]
    lines += [f"    {k:<24} {v}" for k, v in sorted(o["stackOutputs"].items())]
    lines += [
        "  DEV-ONLY keys of this run (gone when it stops):",
        f"    signing key (HS256, Base64) {o['devOnlyKeys']['signingKey']}",
        f"    HTTP API key (generated)    {o['devOnlyKeys']['apiKey']}",
        "  A dev token (uid dev, every channel, 1 h):",
        f"    {token}",
        "  Try:",
        f"    websocat '{o['webSocketUrl']}?token=<token>'",
        f"    curl -X POST {o['httpApiUrl']}publish -H 'Authorization: Bearer "
        f"{o['devOnlyKeys']['apiKey']}' -d '{{\"channel\":\"chat\",\"event\":\"msg\",\"data\":\"hi\"}}'",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", required=True, help="the prebuilt-bootstrap template")
    parser.add_argument("--sam", required=True, help="SAM CLI executable")
    parser.add_argument("--venv", required=True, help="MiniStack's virtualenv")
    parser.add_argument("--workdir", required=True, help="logs and state of this run")
    parser.add_argument("--outputs", help="write the outputs (JSON) here")
    parser.add_argument("--port", type=int, default=0, help="MiniStack's port (default: free)")
    parser.add_argument("--no-wait", action="store_true",
                        help="stop MiniStack after deploying (checks the deploy only)")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    port = args.port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    t0 = time.time()
    ministack = start_ministack(args.venv, port, args.workdir)
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)
        stop(ministack)
        sys.exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        print(f"emulated deploy: MiniStack up on {endpoint} in {time.time() - t0:.1f}s",
              file=sys.stderr)
        keys = dev_keys()
        t1 = time.time()
        sam_deploy(args.sam, os.path.abspath(args.template), endpoint, keys, args.workdir)
        print(f"emulated deploy: stack deployed in {time.time() - t1:.1f}s", file=sys.stderr)
        o = outputs(endpoint, keys, port)
        o["ministackPid"] = ministack.pid
        o["workdir"] = os.path.abspath(args.workdir)
        if args.outputs:
            tmp = args.outputs + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(o, f, indent=2)
            os.replace(tmp, args.outputs)  # appears whole: readers poll for it
        print(describe(o), flush=True)
        if args.no_wait:
            return
        print("  Ctrl-C stops MiniStack and every function it started.", flush=True)
        while ministack.poll() is None:
            time.sleep(0.5)
        raise SystemExit(f"MiniStack exited with {ministack.returncode}")
    finally:
        stop(ministack)


if __name__ == "__main__":
    main()
