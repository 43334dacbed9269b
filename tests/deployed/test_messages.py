"""Subscribing, client publishes with and without echo, and stored history, on the
deployed stack (the same frames tests/tests/channels.rs, wire.rs and history.rs assert on
the local stage)."""

import unittest

from harness import Connections, connection_api, is_ulid, unique


def chat_claims(channel: str, uid: str) -> dict:
    """May subscribe to `channel`; `msg` is echoed and stored for an hour, `quiet` is
    neither, `marker` is echoed (to prove what came before it)."""
    return {
        "scope": "connect",
        "uid": uid,
        "umd": {"name": uid.title()},
        "channels": {
            channel: {
                "subscribe": True,
                "messages": {
                    "msg": {"publish": True, "echo": True, "store": 3600},
                    "quiet": {"publish": True},
                    "marker": {"publish": True, "echo": True},
                },
            }
        },
    }


class Messages(unittest.TestCase):
    def setUp(self):
        self.channel = unique("chat")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def join(self, uid: str):
        client = self.conns.connect(chat_claims(self.channel, uid))
        client.subscribed(self.channel)
        return client

    def test_subscribe_answers_subscribed(self):
        jim = self.conns.connect(chat_claims(self.channel, "jim"))
        frame = jim.subscribe(self.channel)
        self.assertEqual(
            frame,
            {
                "event": "hotsock.subscribed",
                "channel": self.channel,
                "data": {},
                "meta": {"uid": "jim", "umd": {"name": "Jim"}},
            },
        )
        # Subscribing twice is refused with the channel as the client named it.
        jim.send({"event": "hotsock.subscribe", "channel": self.channel})
        jim.expect_error("ALREADY_SUBSCRIBED", self.channel)

    def test_publish_with_echo_reaches_the_publisher_and_the_others(self):
        jim = self.join("jim")
        pam = self.join("pam")
        jim.send({"channel": self.channel, "event": "msg", "data": {"text": "hi", "n": [1, 2]}})
        echo = jim.expect_event("msg")
        self.assertEqual(set(echo), {"id", "event", "channel", "data", "meta"}, echo)
        self.assertTrue(is_ulid(echo["id"]), echo)
        self.assertEqual(echo["event"], "msg")
        self.assertEqual(echo["channel"], self.channel)
        self.assertEqual(echo["data"], {"text": "hi", "n": [1, 2]})
        self.assertEqual(echo["meta"], {"uid": "jim", "umd": {"name": "Jim"}})
        # Every subscriber gets the same copy, id included.
        self.assertEqual(pam.expect_event("msg"), echo)

    def test_publish_without_echo_skips_the_publisher_only(self):
        jim = self.join("jim")
        pam = self.join("pam")
        jim.send({"channel": self.channel, "event": "quiet", "data": 1})
        got = pam.expect_event("quiet")
        self.assertEqual(got["data"], 1)
        self.assertEqual(got["meta"], {"uid": "jim", "umd": {"name": "Jim"}})
        # Jim's next frame is the echo of a later marker: the quiet message, delivered
        # before it on the channel's ordered path, never reached him.
        jim.send({"channel": self.channel, "event": "marker", "data": "after"})
        frame = jim.next()
        self.assertEqual((frame["event"], frame["data"]), ("marker", "after"), frame)

    def test_stored_message_is_listed_by_list_messages(self):
        jim = self.join("jim")
        jim.send({"channel": self.channel, "event": "msg", "data": {"text": "kept"}})
        # The echo means it was delivered, and a stored message is listable from then.
        echo = jim.expect_event("msg")
        # Not stored (`quiet` has no store directive): delivered, never listed.
        jim.send({"channel": self.channel, "event": "quiet", "data": "gone"})
        jim.send({"channel": self.channel, "event": "marker", "data": "m"})
        jim.expect_event("marker")

        status, page = connection_api(jim, "listMessages", {"channel": self.channel})
        self.assertEqual(status, 200, page)
        # The same item shape as the delivered message.
        self.assertEqual(page, {"messages": [echo]})

        # Not subscribed: nothing to list.
        other = self.conns.connect(chat_claims(self.channel, "pam"))
        status, body = connection_api(other, "listMessages", {"channel": self.channel})
        self.assertEqual(status, 403, body)
        self.assertEqual(body["error"]["code"], "NOT_SUBSCRIBED")


if __name__ == "__main__":
    unittest.main()


class UnicodeChannels(unittest.TestCase):
    def setUp(self):
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def test_a_channel_name_sqs_cannot_take_as_a_group_still_delivers(self):
        """A channel of 200 characters, some of them four-byte emoji, travels the
        delivery queue under its digest (SQS FIFO message groups are at most 128 ASCII
        characters) and reaches its subscriber: the deliver function reads the channel
        from the record, not from the group."""
        channel = unique("чат-🙂-") + "x" * 180
        claims = {"scope": "connect", "channels": {channel: {
            "subscribe": True, "messages": {"msg": {"publish": True, "echo": True}}}}}
        client = self.conns.connect(claims)
        self.assertEqual(client.subscribe(channel)["event"], "hotsock.subscribed")
        client.send({"channel": channel, "event": "msg", "data": "привет"})
        frame = client.expect_event("msg")
        self.assertEqual(frame["channel"], channel)
        self.assertEqual(frame["data"], "привет")
