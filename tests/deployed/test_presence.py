"""Presence channels and user metadata updates on the deployed stack (the frames of
tests/tests/presence.rs and umd.rs)."""

import time
import unittest

from harness import RESOURCES, Connections, log_lines, sign, unique


def member(uid: str, umd=None) -> dict:
    return {"uid": uid, "umd": {"name": uid} if umd is None else umd}


class Presence(unittest.TestCase):
    def setUp(self):
        self.room = unique("presence.room")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def join(self, uid: str):
        """`uid` (umd {"name": uid}) connected and subscribed to the room; returns the
        client and its `hotsock.subscribed`."""
        client = self.conns.connect({
            "scope": "connect", "uid": uid, "umd": {"name": uid},
            "channels": {"presence.*": {"subscribe": True,
                                        "messages": {"m": {"publish": True, "echo": True}}}},
        })
        return client, client.subscribed(self.room)

    def test_join_lists_the_members_and_tells_the_others(self):
        jim, subscribed = self.join("jim")
        self.assertEqual(subscribed, {
            "event": "hotsock.subscribed", "channel": self.room,
            "data": {"members": [member("jim")]}, "meta": {"uid": "jim", "umd": {"name": "jim"}},
        })
        pam, subscribed = self.join("pam")
        self.assertEqual(subscribed["data"], {"members": [member("jim"), member("pam")]})
        self.assertEqual(jim.expect_event("hotsock.memberAdded"), {
            "event": "hotsock.memberAdded", "channel": self.room,
            "data": {"member": member("pam"), "members": [member("jim"), member("pam")]},
        })
        # Pam is not told of her own join: her next frame is her own later message.
        pam.send({"channel": self.room, "event": "m", "data": "after"})
        frame = pam.next()
        self.assertEqual((frame["event"], frame["data"]), ("m", "after"), frame)

    def test_leave_by_unsubscribe_tells_the_others(self):
        jim, _ = self.join("jim")
        pam, _ = self.join("pam")
        jim.expect_event("hotsock.memberAdded")
        pam.send({"event": "hotsock.unsubscribe", "channel": self.room})
        self.assertEqual(pam.expect_event("hotsock.unsubscribed"), {
            "event": "hotsock.unsubscribed", "channel": self.room,
            "data": {}, "meta": {"uid": "pam", "umd": {"name": "pam"}},
        })
        self.assertEqual(jim.expect_event("hotsock.memberRemoved"), {
            "event": "hotsock.memberRemoved", "channel": self.room,
            "data": {"member": member("pam"), "members": [member("jim")]},
        })

    def test_leave_by_disconnect_tells_the_others(self):
        """Closing the socket tells the other members (hotsock.memberRemoved).

        The subscription ends as an unsubscribe would: the $disconnect function queues
        the leave on the channel's ordered path (the delivery queue), and the deliver
        function tells the remaining members.
        """
        jim, _ = self.join("jim")
        pam, _ = self.join("pam")
        jim.expect_event("hotsock.memberAdded")
        since_ms = int(time.time() * 1000)
        pam.close()
        try:
            removed = jim.expect_event("hotsock.memberRemoved")
        except AssertionError as e:
            # Say why, when the disconnect function knows (e.g. a refused SendMessage).
            errors = log_lines(RESOURCES["DisconnectLogGroup"], since_ms, "ERROR")
            raise AssertionError(
                f"{e}; the disconnect function logged: {[line[:400] for line in errors]}"
            ) from None
        self.assertEqual(removed, {
            "event": "hotsock.memberRemoved", "channel": self.room,
            "data": {"member": member("pam"), "members": [member("jim")]},
        })

    def test_umd_update_tells_every_member_and_later_messages_carry_it(self):
        jim, _ = self.join("jim")
        pam, _ = self.join("pam")
        jim.expect_event("hotsock.memberAdded")
        token = sign({"scope": "umd", "connectionId": pam.connection_id,
                      "umd": {"name": "Pam B."},
                      "channels": {self.room: {"umdUpdate": True}}})
        pam.send({"event": "hotsock.umdUpdate", "channel": self.room, "data": {"token": token}})
        renamed = member("pam", {"name": "Pam B."})
        expected = {
            "event": "hotsock.memberUpdated", "channel": self.room,
            "data": {"member": renamed, "members": [member("jim"), renamed]},
        }
        # Every member hears it, the updater included.
        self.assertEqual(jim.next(), expected)
        self.assertEqual(pam.next(), expected)
        pam.send({"channel": self.room, "event": "m", "data": 1})
        self.assertEqual(jim.expect_event("m")["meta"], renamed)

    def test_umd_update_without_the_grant_is_refused(self):
        pam, _ = self.join("pam")
        token = sign({"scope": "umd", "connectionId": pam.connection_id, "umd": "x"})
        pam.send({"event": "hotsock.umdUpdate", "channel": self.room, "data": {"token": token}})
        pam.expect_error("UMD_UPDATE_NOT_ALLOWED", self.room)


if __name__ == "__main__":
    unittest.main()
