"""Channel storage on the deployed stack: observers, writes and reads (the frames of
tests/tests/storage.rs)."""

import unittest

from harness import Connections, connection_api, unique


def player(channel: str, uid: str, host: bool) -> dict:
    """Observes and reads every key of `channel`; only the host may write `settings`."""
    return {
        "scope": "connect", "uid": uid, "umd": {"name": uid},
        "channels": {channel: {
            "subscribe": True,
            "storage": {
                "*": {"observe": True, "get": True},
                "settings": {"set": host},
                "player.*": {"set": True, "store": 3600},
            },
        }},
    }


class ChannelStorage(unittest.TestCase):
    def setUp(self):
        self.lobby = unique("lobby")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def joined(self, uid: str, host: bool = False):
        client = self.conns.connect(player(self.lobby, uid, host))
        client.subscribed(self.lobby)
        return client

    def set(self, client, key: str, data) -> None:
        client.send({"event": "hotsock.channelStorageSet", "channel": self.lobby,
                     "key": key, "data": data})

    def get(self, client, key: str) -> dict:
        client.send({"event": "hotsock.channelStorageGet", "channel": self.lobby, "key": key})
        return client.expect_event("hotsock.channelStorageData",
                                   where=lambda f: f.get("key") == key)

    def test_set_tells_every_observer_the_writer_included(self):
        host = self.joined("host", host=True)
        guest = self.joined("guest")
        self.set(host, "settings", {"mode": "duel", "max": 2})
        expected = {
            "event": "hotsock.channelStorageUpdated", "channel": self.lobby, "key": "settings",
            "data": {"mode": "duel", "max": 2}, "meta": {"uid": "host", "umd": {"name": "host"}},
        }
        self.assertEqual(guest.expect_event("hotsock.channelStorageUpdated"), expected)
        self.assertEqual(host.expect_event("hotsock.channelStorageUpdated"), expected)
        # Without the set grant: refused, nothing written.
        self.set(guest, "settings", {"mode": "mine"})
        guest.expect_error("STORAGE_PERMISSION_DENIED", self.lobby)

    def test_get_reads_the_entry_and_its_writer(self):
        guest = self.joined("guest")
        self.set(guest, "player.guest", {"ready": True})
        # Applied on the channel's ordered path: the observer's own update says it is done.
        guest.expect_event("hotsock.channelStorageUpdated")
        self.assertEqual(self.get(guest, "player.guest"), {
            "event": "hotsock.channelStorageData", "channel": self.lobby, "key": "player.guest",
            "data": {"ready": True}, "meta": {"uid": "guest", "umd": {"name": "guest"}},
        })
        self.assertEqual(self.get(guest, "player.nobody"), {
            "event": "hotsock.channelStorageData", "channel": self.lobby, "key": "player.nobody",
            "data": None, "meta": None,
        })
        # The Client HTTP API reads the same entry.
        status, body = connection_api(guest, "channelStorageGet",
                                      {"channel": self.lobby, "key": "player.guest"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["data"], {"ready": True})

    def test_a_new_observer_is_caught_up_after_subscribed(self):
        host = self.joined("host", host=True)
        self.set(host, "settings", {"mode": "coop"})
        host.expect_event("hotsock.channelStorageUpdated")
        late = self.conns.connect(player(self.lobby, "late", False))
        late.send({"event": "hotsock.subscribe", "channel": self.lobby})
        self.assertEqual(late.next()["event"], "hotsock.subscribed")
        catch_up = late.next()
        self.assertEqual(
            (catch_up["event"], catch_up["key"], catch_up["data"]),
            ("hotsock.channelStorageUpdated", "settings", {"mode": "coop"}),
        )


if __name__ == "__main__":
    unittest.main()
