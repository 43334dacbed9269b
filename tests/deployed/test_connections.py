"""`$connect`, the greeting, refused tokens and invalid frames on the deployed stack
(tests/tests/connect.rs and channels.rs assert the same on the local stage)."""

import base64
import time
import unittest
from datetime import datetime, timezone

from harness import (
    RESOURCES, Connections, Refused, eventually, log_lines, now, sign, try_connect, unique,
)


class Connecting(unittest.TestCase):
    def setUp(self):
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def test_connected_frame_has_the_protocol_shape(self):
        opened = time.time()
        client = self.conns.connect({"scope": "connect", "uid": "jim", "umd": {"name": "Jim"}})
        frame = client.connected
        self.assertEqual(set(frame), {"event", "data", "meta"}, frame)
        self.assertEqual(frame["event"], "hotsock.connected")
        data = frame["data"]
        self.assertEqual(set(data), {"connectionId", "connectionExpiresAt", "connectionSecret"})
        # API Gateway's id (MiniStack's are 16 hex characters; AWS's 16 base64 ones).
        self.assertIsInstance(data["connectionId"], str)
        self.assertTrue(data["connectionId"], data)
        self.assertIsInstance(data["connectionSecret"], str)
        self.assertGreaterEqual(len(data["connectionSecret"]), 20, data)
        # RFC 3339 UTC to the second, two hours after the socket opened.
        expires = data["connectionExpiresAt"]
        self.assertRegex(expires, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        expires_at = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        self.assertAlmostEqual(expires_at.timestamp(), opened + 7200, delta=60)
        self.assertEqual(frame["meta"], {"uid": "jim", "umd": {"name": "Jim"}})

    def test_anonymous_connection_has_null_meta(self):
        client = self.conns.connect({"scope": "connect"})
        self.assertEqual(client.connected["meta"], {"uid": None, "umd": None})

    def assert_refused(self, token: str, code: str):
        """The upgrade with `token` is refused, by the connect function, with `code`.

        MiniStack quirk: its API Gateway answers every $connect the function refused
        with HTTP 403 and an empty body. AWS answers the status the function returned,
        with its body: here 401 and {"error":{"code":CODE,...}}. So the status is
        checked as AWS would answer it unless it is MiniStack's bare 403, and the code
        is read from the connect function's log either way.
        """
        # From now: an earlier refusal with the same code logged before this one began.
        since_ms = int(time.time() * 1000)
        with self.assertRaises(Refused) as refused:
            try_connect(token).close()
        status, body = refused.exception.status, refused.exception.body
        if (status, body) != (403, b""):  # not MiniStack's bare answer: AWS's
            self.assertEqual(status, 401, body)
            self.assertIn(code.encode(), body)
        eventually(
            lambda: log_lines(RESOURCES["ConnectLogGroup"], since_ms,
                              "connect refused", f'code="{code}"'),
            what=f"the connect function logging its {code} refusal",
        )

    def test_expired_token_is_refused(self):
        self.assert_refused(sign({"scope": "connect", "exp": now() - 10}), "TOKEN_EXPIRED")
        # The same claims, unexpired, connect: the refusal was the expiry's.
        self.conns.connect({"scope": "connect", "exp": now() + 60})

    def test_badly_signed_token_is_refused(self):
        other_secret = b"some-other-secret-entirely-0123456"
        self.assert_refused(
            sign({"scope": "connect", "exp": now() + 60}, secret=other_secret),
            "TOKEN_BAD_SIGNATURE",
        )
        # A signature over other claims than the payload carries is just as bad.
        good = sign({"scope": "connect", "uid": "jim"})
        header, _, signature = good.split(".")
        forged = base64.urlsafe_b64encode(b'{"scope":"connect","uid":"admin","exp":9999999999}')
        self.assert_refused(f"{header}.{forged.rstrip(b'=').decode()}.{signature}",
                            "TOKEN_BAD_SIGNATURE")
        self.conns.connect({"scope": "connect", "uid": "jim"})

    def test_invalid_frame_is_answered_and_the_connection_keeps_working(self):
        channel = unique("room")
        client = self.conns.connect({
            "scope": "connect",
            "channels": {channel: {"subscribe": True,
                                   "messages": {"msg": {"publish": True, "echo": True}}}},
        })
        client.send_text("this is not JSON")
        client.expect_error("INVALID_MESSAGE", None)
        client.send_text("[1, 2, 3]")  # JSON, not an object
        client.expect_error("INVALID_MESSAGE", None)
        client.send({"event": "hotsock.launchRockets"})
        client.expect_error("UNKNOWN_COMMAND", None)
        client.send({"event": "hotsock.subscribe", "channel": "bad channel"})
        client.expect_error("INVALID_CHANNEL", "bad channel")
        # Still open, still served: ping, subscribe and publish all work.
        client.ping()
        client.subscribed(channel)
        client.send({"channel": channel, "event": "msg", "data": "still here"})
        self.assertEqual(client.expect_event("msg")["data"], "still here")

if __name__ == "__main__":
    unittest.main()
