"""The server API of the deployed stack: `POST publish` on the function URL and direct
invocation of the publish function (tests/tests/server.rs asserts the same locally)."""

import json
import unittest

from harness import (
    HTTP_API_URL, STACK, Connections, aws, http_post, is_ulid, server_publish, unique,
)


class ServerPublish(unittest.TestCase):
    def setUp(self):
        self.channel = unique("news")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)
        self.listener = self.conns.connect({
            "scope": "connect", "uid": "listener",
            "channels": {self.channel: {"subscribe": True}},
        })
        self.listener.subscribed(self.channel)

    def test_publish_through_the_function_url(self):
        status, reply = server_publish({"channel": self.channel, "event": "headline",
                                        "data": {"t": 1}})
        self.assertEqual(status, 202, reply)
        self.assertEqual(reply, {"channel": self.channel, "event": "headline"})
        got = self.listener.expect_event("headline")
        # A server message carries no meta.
        self.assertEqual(set(got), {"id", "event", "channel", "data"}, got)
        self.assertTrue(is_ulid(got["id"]), got)
        self.assertEqual((got["channel"], got["data"]), (self.channel, {"t": 1}))

    def test_publish_through_lambda_invoke(self):
        response = aws("lambda").invoke(
            FunctionName=STACK["PublishFunctionArn"],
            Payload=json.dumps({"channel": self.channel, "event": "direct", "data": 5}).encode(),
        )
        payload = json.loads(response["Payload"].read())
        self.assertNotIn("FunctionError", response, payload)
        self.assertEqual(payload, {"channel": self.channel, "event": "direct"})
        got = self.listener.expect_event("direct")
        self.assertEqual((got["channel"], got["data"]), (self.channel, 5))
        self.assertNotIn("meta", got)

    def test_lambda_invoke_of_a_bad_message_fails_with_its_code(self):
        response = aws("lambda").invoke(
            FunctionName=STACK["PublishFunctionArn"],
            Payload=json.dumps({"channel": "bad name", "event": "x"}).encode(),
        )
        self.assertIn("FunctionError", response)
        error = json.loads(response["Payload"].read())
        self.assertEqual(error["errorType"], "INVALID_CHANNEL", error)
        self.assertTrue(error["errorMessage"], error)

    def test_wrong_api_key_is_401_with_a_json_error(self):
        status, body = server_publish({"channel": self.channel, "event": "x"},
                                      api_key="dev-only-not-the-key")
        self.assertEqual(status, 401, body)
        self.assertEqual(set(body), {"error"}, body)
        self.assertEqual(body["error"]["code"], "UNAUTHORIZED")
        self.assertTrue(body["error"]["message"], body)
        # No key at all is the same.
        status, body = http_post(f"{HTTP_API_URL}publish", {"channel": self.channel, "event": "x"})
        self.assertEqual((status, body["error"]["code"]), (401, "UNAUTHORIZED"), body)
        # Nothing was published: the listener's next message is a later, good one.
        server_publish({"channel": self.channel, "event": "marker"})
        self.assertEqual(self.listener.next()["event"], "marker")


if __name__ == "__main__":
    unittest.main()
