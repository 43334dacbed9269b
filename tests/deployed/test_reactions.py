"""Reactions on stored messages on the deployed stack (the frames of
tests/tests/reactions.rs)."""

import unittest

from harness import Connections, connection_api, is_ulid, unique


def chat_claims(channel: str, uid: str) -> dict:
    return {"scope": "connect", "uid": uid, "umd": {"name": uid}, "channels": {channel: {
        "subscribe": True,
        "messages": {
            "chat": {"publish": True, "echo": True, "store": 3600, "react": ["👍", "❤️"]},
            "fleeting": {"publish": True, "echo": True},
        },
    }}}


class Reactions(unittest.TestCase):
    def setUp(self):
        self.channel = unique("chat")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def joined(self, uid: str):
        client = self.conns.connect(chat_claims(self.channel, uid))
        client.subscribed(self.channel)
        return client

    def react(self, client, message_id: str, reaction: str, action: str = "add") -> None:
        client.send({"event": "hotsock.messageReaction", "channel": self.channel,
                     "data": {"messageId": message_id, "reaction": reaction, "action": action}})

    def test_a_reaction_reaches_every_subscriber_and_is_listed(self):
        jim = self.joined("jim")
        pam = self.joined("pam")
        jim.send({"channel": self.channel, "event": "chat", "data": {"text": "hello"}})
        message_id = pam.expect_event("chat")["id"]
        jim.expect_event("chat")

        self.react(pam, message_id, "👍")
        seen_by_jim = jim.expect_event("hotsock.messageReactionAdded")
        event_id = seen_by_jim.pop("id")
        # The reaction event has an id of its own, a ULID after the message's.
        self.assertTrue(is_ulid(event_id) and event_id > message_id, event_id)
        self.assertEqual(seen_by_jim, {
            "event": "hotsock.messageReactionAdded", "channel": self.channel,
            "data": {"messageId": message_id, "reaction": "👍", "action": "add"},
            "meta": {"uid": "pam", "umd": {"name": "pam"}},
        })
        # The reactor gets it too, the same event.
        self.assertEqual(pam.expect_event("hotsock.messageReactionAdded")["id"], event_id)

        status, page = connection_api(jim, "listMessages", {"channel": self.channel})
        self.assertEqual(status, 200, page)
        self.assertEqual(page["messages"][0]["reactions"], {"👍": {"count": 1}})
        status, listed = connection_api(jim, "listReactions",
                                        {"channel": self.channel, "messageId": message_id})
        self.assertEqual(status, 200, listed)
        self.assertEqual(listed, {"reactions": [{"reaction": "👍", "uid": "pam",
                                                 "umd": {"name": "pam"}}]})

        self.react(pam, message_id, "👍", "remove")
        removed = jim.expect_event("hotsock.messageReactionRemoved")
        self.assertEqual(removed["data"],
                         {"messageId": message_id, "reaction": "👍", "action": "remove"})

    def test_reactions_the_grant_does_not_allow_are_refused(self):
        jim = self.joined("jim")
        jim.send({"channel": self.channel, "event": "chat", "data": "x"})
        message_id = jim.expect_event("chat")["id"]
        self.react(jim, message_id, "😂")
        jim.expect_error("REACTION_NOT_ALLOWED", self.channel)
        # A message that was never stored cannot be reacted to.
        jim.send({"channel": self.channel, "event": "fleeting", "data": "y"})
        fleeting_id = jim.expect_event("fleeting")["id"]
        self.react(jim, fleeting_id, "👍")
        jim.expect_error("MESSAGE_NOT_FOUND", self.channel)


if __name__ == "__main__":
    unittest.main()
