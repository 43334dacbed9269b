"""The sweeper of the deployed stack closing connections that miss their heartbeat
(tests/tests/server.rs, sweeper_closes_connections_that_miss_heartbeats)."""

import json
import threading
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

        Invoked as its EventBridge rule invokes it (asynchronously, with the Scheduled
        Event), it closes the connection that sent no hotsock.heartbeat for longer than
        its heartbeatTimeout claim; the one that keeps heartbeating stays open. While
        heartbeat deadlines are ahead the invocation keeps passing every couple of
        seconds for most of a minute, so the chatty one heartbeats throughout.
        """
        quiet = self.conns.connect({"scope": "connect", "heartbeatTimeout": TIMEOUT})
        chatty = self.conns.connect({"scope": "connect", "heartbeatTimeout": TIMEOUT})
        stop = threading.Event()

        def heartbeats():
            while not stop.is_set():
                chatty.send({"event": "hotsock.heartbeat"})
                stop.wait(1)

        beating = threading.Thread(target=heartbeats, daemon=True)
        beating.start()
        self.addCleanup(beating.join)
        self.addCleanup(stop.set)
        # Before its deadline the quiet one is open: a ping (which is no heartbeat)
        # is answered.
        quiet.ping()
        response = aws("lambda").invoke(
            FunctionName=RESOURCES["SweeperFunction"],
            InvocationType="Event",
            Payload=json.dumps(scheduled_event()).encode(),
        )
        self.assertEqual(response["StatusCode"], 202, response)
        # Once it has missed its heartbeat, a sweep closes it: this invocation, or
        # the stack's own once-a-minute one, whichever watches the deadline.
        self.assertTrue(quiet.closed_within(TIMEOUT + WAIT), "the quiet connection is still open")
        # The one that keeps its heartbeat is still served.
        chatty.ping()


if __name__ == "__main__":
    unittest.main()
