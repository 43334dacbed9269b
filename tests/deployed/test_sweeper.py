"""The sweeper of the deployed stack closing connections that miss their heartbeat
(tests/tests/server.rs, sweeper_closes_connections_that_miss_heartbeats)."""

import json
import time
import unittest

from harness import RESOURCES, WAIT, Connections, aws, scheduled_event

TIMEOUT = 5  # heartbeatTimeout, seconds: the smallest a token may ask for


class Sweeper(unittest.TestCase):
    def setUp(self):
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)

    def test_sweeper_closes_a_connection_that_misses_its_heartbeat(self):
        """The sweeper closes the connection that missed its heartbeat, and only that one.

        Invoked directly with the Scheduled Event its EventBridge rule sends, it closes
        the connection that sent no hotsock.heartbeat for longer than its
        heartbeatTimeout claim; the one that kept heartbeating stays open.
        """
        quiet = self.conns.connect({"scope": "connect", "heartbeatTimeout": TIMEOUT})
        chatty = self.conns.connect({"scope": "connect", "heartbeatTimeout": TIMEOUT})
        # Past the timeout, with a second's margin for the sweeper's whole-second clock;
        # only the chatty one heartbeats meanwhile.
        deadline = time.monotonic() + TIMEOUT + 2
        while time.monotonic() < deadline:
            chatty.send({"event": "hotsock.heartbeat"})
            time.sleep(1)
        # A ping is not a heartbeat: it proves the quiet socket is still open right
        # before the sweep, without renewing it. (The stack's own once-a-minute rule
        # may sweep first; the outcome is the same.)
        quiet.ping()

        response = aws("lambda").invoke(
            FunctionName=RESOURCES["SweeperFunction"],
            Payload=json.dumps(scheduled_event()).encode(),
        )
        self.assertNotIn("FunctionError", response, response["Payload"].read())
        self.assertTrue(quiet.closed_within(WAIT), "the quiet connection is still open")
        # The one that kept its heartbeat is still served.
        chatty.ping()


if __name__ == "__main__":
    unittest.main()
