"""Harness for the end-to-end tests of Sockhop's emulated AWS deployment.

The tests drive a stack that `scripts/emulated-deploy.sh` deployed to MiniStack (the
shipped template.yaml through CloudFormation and the SAM transform, IAM enforced) the way
a client, a backend and an operator would: WebSockets through the emulated API Gateway,
HTTP through the function URL, boto3 against the emulated AWS APIs. They never look
inside the functions.

The deployment is named by the environment variable SOCKHOP_DEPLOYED: the path of the
outputs JSON the deploy script writes (`--outputs F.json`, see infra/ministack/deploy.py
for its shape). Only the standard library, boto3 and websockets are used.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import boto3
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

# How long a test waits for a frame that must arrive. Each step of a delivery is a
# Lambda invocation in MiniStack (0.1-0.5 s each, more on a cold start), and a
# connection's frames are handled one at a time, so this is generous on purpose.
WAIT = 15.0


def _load_outputs() -> dict:
    path = os.environ.get("SOCKHOP_DEPLOYED")
    if not path:
        raise RuntimeError(
            "SOCKHOP_DEPLOYED is not set: point it at the outputs JSON of an emulated "
            "deployment, e.g. `scripts/emulated-deploy.sh --outputs .local/emulated/outputs.json` "
            "then `SOCKHOP_DEPLOYED=$PWD/.local/emulated/outputs.json python -m unittest "
            "discover -s tests/deployed -v`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"SOCKHOP_DEPLOYED={path} is not a readable outputs JSON: {e}") from e


OUTPUTS = _load_outputs()
REGION = OUTPUTS["region"]
ENDPOINT = OUTPUTS["endpoint"]
STACK = OUTPUTS["stackOutputs"]
RESOURCES = OUTPUTS["resources"]
KEYS = OUTPUTS["devOnlyKeys"]
WEBSOCKET_URL = OUTPUTS["webSocketUrl"]
HTTP_API_URL = OUTPUTS["httpApiUrl"]  # ends with "/"
# MiniStack's account (every ARN of the stack carries it).
ACCOUNT = STACK["PublishFunctionArn"].split(":")[4]


# ------------------------------------------------------------------ small helpers


def now() -> int:
    return int(time.time())


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the same stack) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def utc_at(epoch_seconds: int) -> str:
    """EventBridge Scheduler's one-time expression for an instant, in UTC."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return f"at({moment.strftime('%Y-%m-%dT%H:%M:%S')})"


def is_ulid(value) -> bool:
    alphabet = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    return isinstance(value, str) and len(value) == 26 and set(value) <= alphabet


def eventually(check, timeout: float = WAIT, interval: float = 0.5, what: str = "condition"):
    """Polls `check()` until it returns something truthy; returns that, or fails."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f} s")
        time.sleep(interval)


def _check(condition, expected: str, got) -> None:
    """An assertion that holds under `python -O` too."""
    if not condition:
        raise AssertionError(f"{expected}, got {got}")


# ------------------------------------------------------------------ tokens


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(claims: dict, secret: bytes | None = None) -> str:
    """An HS256 JWT over `claims`, signed with this run's DEV-ONLY signing key (or
    `secret`); `exp` defaults to an hour from now."""
    claims = dict(claims)
    claims.setdefault("exp", now() + 3600)
    key = secret if secret is not None else base64.b64decode(KEYS["signingKey"])
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


# ------------------------------------------------------------------ WebSocket client


class Refused(Exception):
    """The upgrade was answered with an HTTP status instead of a socket."""

    def __init__(self, status: int, body: bytes, detail: str = ""):
        super().__init__(f"upgrade refused: HTTP {status} {body[:200]!r}"
                         + (f"\n{detail}" if detail else ""))
        self.status = status
        self.body = bytes(body)


class Client:
    """One WebSocket connection to the deployed stage, reading JSON frames."""

    def __init__(self, socket):
        self.socket = socket
        self.connection_id = ""
        self.secret = ""
        self.connected: dict = {}

    # --- sending

    def send(self, frame: dict) -> None:
        self.socket.send(json.dumps(frame))

    def send_text(self, text: str) -> None:
        self.socket.send(text)

    # --- receiving

    def next_within(self, timeout: float):
        """The next JSON frame, or None after `timeout` seconds or when the socket closed."""
        try:
            text = self.socket.recv(timeout=timeout)
        except (TimeoutError, ConnectionClosed):
            return None
        return json.loads(text)

    def next(self, timeout: float = WAIT) -> dict:
        frame = self.next_within(timeout)
        if frame is None:
            raise AssertionError(f"no frame arrived within {timeout:.0f} s")
        return frame

    def expect_event(self, event: str, timeout: float = WAIT, where=None) -> dict:
        """Skips frames until one with `event` (and, when given, `where(frame)` true)
        arrives; fails after `timeout` seconds in all."""
        return self.expect_event_in((event,), timeout, where)

    def expect_event_in(self, events, timeout: float = WAIT, where=None) -> dict:
        """Like expect_event, for the first frame whose event is one of `events`."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            left = deadline - time.monotonic()
            frame = self.next_within(left) if left > 0 else None
            if frame is None:
                raise AssertionError(
                    f"no {' or '.join(events)} frame within {timeout:.0f} s; skipped {skipped}")
            if frame.get("event") in events and (where is None or where(frame)):
                return frame
            skipped.append(frame)

    def expect_error(self, code: str, channel: str | None = None, timeout: float = WAIT) -> dict:
        """Skips to the next `hotsock.error` and checks its shape, code and channel
        (`channel` None: the frame must carry none)."""
        frame = self.expect_event("hotsock.error", timeout)
        message = frame["error"].get("message")
        _check(frame["error"].get("code") == code, f"expected {code}", frame)
        _check(isinstance(message, str) and message, "an error message", frame)
        _check(frame["data"] == {}, "data {}", frame)
        _check(frame.get("channel") == channel if channel else "channel" not in frame,
               f"channel {channel!r}", frame)
        return frame

    def subscribe(self, channel: str, token: str | None = None) -> dict:
        """Sends `hotsock.subscribe` (with a subscribe token when given); returns its
        answer: the `hotsock.subscribed` or `hotsock.error` for that channel (frames for
        other channels, or messages arriving before the answer, are skipped)."""
        frame = {"event": "hotsock.subscribe", "channel": channel}
        if token is not None:
            frame["data"] = {"token": token}
        self.send(frame)
        return self.expect_event_in(
            ("hotsock.subscribed", "hotsock.error"), where=lambda f: f.get("channel") == channel
        )

    def subscribed(self, channel: str, token: str | None = None) -> dict:
        """Subscribes and asserts it worked; returns the `hotsock.subscribed` frame."""
        answer = self.subscribe(channel, token)
        _check(answer["event"] == "hotsock.subscribed", "hotsock.subscribed", answer)
        return answer

    def closed_within(self, timeout: float) -> bool:
        """True when the server closes the socket within `timeout` seconds (frames
        arriving meanwhile are read and dropped), False when it is still open then."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self.socket.recv(timeout=left)
            except TimeoutError:
                return False
            except ConnectionClosed:
                return True

    def ping(self) -> dict:
        """`hotsock.ping` -> `hotsock.pong`: proves the connection is open and working."""
        self.send({"event": "hotsock.ping"})
        pong = self.expect_event("hotsock.pong")
        _check(pong == {"event": "hotsock.pong", "data": "{}"}, "the pong frame", pong)
        return pong

    def close(self) -> None:
        try:
            self.socket.close()
        except Exception:  # already closed by the server: nothing to do
            pass


def try_connect(token: str) -> Client:
    """Opens the upgrade with `token`; raises Refused with the status when refused."""
    url = f"{WEBSOCKET_URL}?token={token}"
    try:
        socket = ws_connect(
            url,
            legacy=True,
            proxy=None,
            compression=None,  # API Gateway negotiates no extension either
            open_timeout=WAIT * 2,  # $connect may meet a cold function
            # The client is passive, like a browser: no protocol-level pings of its own.
            ping_interval=None,
            close_timeout=5,
            max_queue=1024,
        )
    except InvalidStatus as e:
        raise Refused(e.response.status_code, e.response.body or b"") from None
    return Client(socket)


def recent_errors(limit: int = 12) -> str:
    """The emulator's last error lines (its log holds every function's output), for a
    failure message that says what went wrong inside the stack."""
    path = os.path.join(OUTPUTS.get("workdir", ""), "ministack.log")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()[-4000:]
    except OSError as e:
        return f"(no emulator log: {e})"
    errors = [l.rstrip() for l in lines if "ERROR" in l or "error" in l]
    return "recent errors in " + path + ":\n" + "\n".join(errors[-limit:])


class Connections:
    """Opens connections for a test and closes every one of them at its end
    (`self.addCleanup(conns.close_all)`)."""

    def __init__(self):
        self.clients: list[Client] = []

    def connect(self, claims: dict) -> Client:
        """Connects with `claims` (signed, exp defaulted) and waits for `hotsock.connected`."""
        try:
            client = try_connect(sign(claims))
        except Refused as e:
            # A connect the test expects to succeed: say why the stack refused it.
            raise Refused(e.status, e.body, recent_errors()) from None
        self.clients.append(client)
        connected = client.expect_event("hotsock.connected")
        client.connection_id = connected["data"]["connectionId"]
        client.secret = connected["data"]["connectionSecret"]
        client.connected = connected
        return client

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


# ------------------------------------------------------------------ HTTP


# No proxy: the function URL is on loopback whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_post(url: str, body, headers: dict | None = None, timeout: float = WAIT * 2):
    """POSTs `body` (JSON-encoded unless bytes/str); returns (status, JSON body or None)."""
    if isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
    else:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def connection_api(client: Client, operation: str, body: dict):
    """`POST connection/<operation>` of the Client HTTP API as `client`."""
    query = urllib.parse.urlencode(
        {"connectionId": client.connection_id, "connectionSecret": client.secret}
    )
    return http_post(f"{HTTP_API_URL}connection/{operation}?{query}", body)


def server_publish(body: dict, api_key: str | None = None):
    """`POST publish` of the server API with the stack's DEV-ONLY API key (or `api_key`)."""
    key = KEYS["apiKey"] if api_key is None else api_key
    return http_post(f"{HTTP_API_URL}publish", body, {"authorization": f"Bearer {key}"})


# ------------------------------------------------------------------ AWS APIs


def aws(service: str):
    """A boto3 client for the emulator, with MiniStack's root credentials."""
    access_key, secret_key = OUTPUTS["rootCredentials"]
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )


def scheduled_event() -> dict:
    """The payload EventBridge hands a function on a schedule rule."""
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": {},
    }


def log_lines(log_group: str, since_ms: int, *needles: str) -> list[str]:
    """The messages a function logged to `log_group` (CloudWatch Logs) from `since_ms`
    on that contain every one of `needles`."""
    logs = aws("logs")
    found, token = [], None
    while True:
        kwargs = {"logGroupName": log_group, "startTime": since_ms}
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        found += [e["message"] for e in page.get("events", [])
                  if all(n in e["message"] for n in needles)]
        token = page.get("nextToken")
        if not token:
            return found
