"""Scheduled delivery on the deployed stack: a server publish with `scheduleExpression`
becomes a one-time EventBridge Scheduler schedule that invokes the publish function when
due (tests/tests/schedule.rs and scheduler_aws.rs check the pieces locally)."""

import json
import time
import unittest

from harness import (
    ACCOUNT, REGION, RESOURCES, STACK, WAIT, Connections, aws, eventually, server_publish,
    unique, utc_at,
)

# MiniStack fires due schedules from a sweep every 10 s (services/scheduler.py,
# _SCHEDULE_TICK_INTERVAL), so a schedule fires up to that late (AWS, with
# FlexibleTimeWindow OFF, fires at the due time).
SCHEDULER_TICK = 10


class ScheduledPublish(unittest.TestCase):
    def setUp(self):
        self.channel = unique("news")
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)
        self.grant_create_schedule_in_default_group()

    def grant_create_schedule_in_default_group(self):
        """TEST-ONLY inline policy on the HttpFunction's role, removed after the test.

        MiniStack quirk: with IAM enforced it checks scheduler:CreateSchedule against
        schedule/default/<name> whatever group the call names (core/iam_actions.py
        derives the resource from the URL path, which has no group), so the template's
        grant on the stack's own group (schedule/<ScheduleGroup>/*), which is right for
        AWS, is refused. This grant covers what MiniStack checks; nothing else changes.
        """
        iam = aws("iam")
        role = RESOURCES["HttpFunctionRole"]
        name = unique("test-only-ministack-scheduler-default-group")
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "scheduler:CreateSchedule",
                "Resource": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/*",
            }],
        }))
        self.addCleanup(iam.delete_role_policy, RoleName=role, PolicyName=name)

    def test_scheduled_server_publish_arrives_at_its_due_time(self):
        """A server publish scheduled 4 s ahead arrives at its due time, not before.

        POST publish with scheduleExpression at(...) in UTC: the HttpFunction creates a
        one-time schedule in the stack's group, MiniStack's scheduler invokes the publish
        function with it when due, and the schedule deletes itself after running.

        Needs the TEST-ONLY inline policy setUp adds to the HttpFunction's role (granting
        scheduler:CreateSchedule on schedule/default/*, removed after the test): MiniStack
        checks that resource whatever group the call names (see
        grant_create_schedule_in_default_group).
        """
        listener = self.conns.connect({"scope": "connect",
                                       "channels": {self.channel: {"subscribe": True}}})
        listener.subscribed(self.channel)
        due = int(time.time()) + 4
        status, reply = server_publish({"channel": self.channel, "event": "later",
                                        "data": {"n": 1}, "scheduleExpression": utc_at(due)})
        self.assertEqual(status, 202, reply)
        self.assertEqual(set(reply), {"channel", "event", "scheduleArn"}, reply)
        self.assertEqual((reply["channel"], reply["event"]), (self.channel, "later"))
        group_prefix = (f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/"
                        f"{STACK['ScheduleGroupName']}/")
        self.assertTrue(reply["scheduleArn"].startswith(group_prefix), reply)

        # Not delivered now: the first frame is the scheduled message, when it is due.
        frame = listener.next(timeout=(due - time.time()) + SCHEDULER_TICK + WAIT)
        arrived = time.time()
        self.assertEqual((frame["event"], frame["channel"], frame["data"]),
                         ("later", self.channel, {"n": 1}), frame)
        self.assertNotIn("meta", frame)
        self.assertGreaterEqual(arrived, due, "delivered before its due time")

        # ActionAfterCompletion DELETE: the schedule is gone once it ran.
        scheduler = aws("scheduler")
        name = reply["scheduleArn"].rsplit("/", 1)[1]

        def deleted():
            try:
                scheduler.get_schedule(GroupName=STACK["ScheduleGroupName"], Name=name)
            except scheduler.exceptions.ResourceNotFoundException:
                return True
            return False

        eventually(deleted, what="the schedule deleting itself")

    def test_schedule_in_the_past_is_refused(self):
        status, body = server_publish({"channel": self.channel, "event": "late",
                                       "scheduleExpression": utc_at(int(time.time()) - 60)})
        self.assertEqual((status, body["error"]["code"]), (400, "SCHEDULE_IN_PAST"), body)


if __name__ == "__main__":
    unittest.main()
