"""Backend events of the deployed stack reaching a backend: an SQS queue behind an
EventBridge rule on the stack's bus, and an SQS queue subscribed to the stack's SNS
topic (tests/tests/pubsub_aws.rs checks the same envelope against moto; README,
"Backend events")."""

import json
import time
import unittest

from harness import (
    ACCOUNT, REGION, RESOURCES, STACK, Connections, aws, unique,
)

# Events are told from the table's stream (lifecycle events) after the frames; both
# hops are Lambda invocations in MiniStack, then a rule or subscription delivery.
EVENT_WAIT = 30


def read_until(queue_url: str, found, timeout: float = EVENT_WAIT, attributes: bool = False):
    """Receives (and deletes) from the queue until `found(message)` returns something
    truthy; returns that. Other messages (earlier events) are dropped."""
    sqs = aws("sqs")
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        kwargs = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}
        if attributes:
            kwargs["MessageAttributeNames"] = ["All"]
        for message in sqs.receive_message(**kwargs).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            seen += 1
            result = found(message)
            if result:
                return result
    raise AssertionError(f"the event did not arrive within {timeout} s ({seen} others did)")


class BackendEvents(unittest.TestCase):
    def setUp(self):
        self.conns = Connections()
        self.addCleanup(self.conns.close_all)
        self.sqs = aws("sqs")

    def queue(self, allow_service: str, source_arn: str) -> tuple[str, str]:
        """A fresh queue (deleted after the test) that `allow_service` may send to for
        `source_arn`, as AWS requires of a rule's or a subscription's queue (MiniStack
        does not check it); returns its URL and ARN."""
        url = self.sqs.create_queue(QueueName=unique("sockhop-test-events"))["QueueUrl"]
        self.addCleanup(self.sqs.delete_queue, QueueUrl=url)
        arn = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": allow_service},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
        }]}
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        return url, arn

    def connect(self):
        return self.conns.connect({"scope": "connect", "uid": "evt", "umd": {"name": "E"}})

    def assert_connected_event(self, event: dict, client) -> None:
        self.assertEqual(event["source"], "hotsock.v1")
        self.assertEqual(event["type"], "hotsock.connected")
        self.assertEqual(event["dataType"], "connection")
        self.assertTrue(event["metadata"]["hotsockVersion"], event)
        data = event["data"]
        self.assertEqual(data["id"], client.connection_id)
        self.assertEqual((data["uid"], data["umd"]), ("evt", {"name": "E"}))
        self.assertIsNone(data["disconnectedAt"])
        self.assertIn("connectedAt", data)

    def test_connected_event_reaches_an_eventbridge_rule_on_the_bus(self):
        events = aws("events")
        bus = STACK["PubSubBusArn"].rsplit("/", 1)[1]
        rule = unique("sockhop-test-all")
        rule_arn = events.put_rule(Name=rule, EventBusName=bus,
                                   EventPattern=json.dumps({"source": ["hotsock.v1"]}))["RuleArn"]
        self.addCleanup(events.delete_rule, Name=rule, EventBusName=bus)
        url, arn = self.queue("events.amazonaws.com", rule_arn)
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        self.addCleanup(events.remove_targets, Rule=rule, EventBusName=bus, Ids=["queue"])

        client = self.connect()

        def connected(message):
            entry = json.loads(message["Body"])
            detail = entry.get("detail", {})
            if detail.get("type") == "hotsock.connected" \
                    and detail["data"].get("id") == client.connection_id:
                return entry
            return None

        entry = read_until(url, connected)
        self.assertEqual(entry["source"], "hotsock.v1")
        self.assertEqual(entry["detail-type"], "connection")
        self.assertEqual((entry["account"], entry["region"]), (ACCOUNT, REGION))
        self.assert_connected_event(entry["detail"], client)

    def test_connected_event_reaches_an_sns_subscription_of_the_topic(self):
        """The hotsock.connected event reaches a raw-delivery SQS subscription of the topic.

        Raw delivery: the queue's body is the event, and SNS's message attributes are the
        SQS message's.

        MiniStack quirk: it authorizes SNS PublishBatch as the IAM action
        sns:PublishBatch, where AWS authorizes it as sns:Publish (the action the
        template grants). So the test adds a TEST-ONLY inline policy granting
        sns:PublishBatch on the topic to the deliver function's role (which greets,
        and so tells hotsock.connected: docs/adr/0005), removed after the test.
        """
        topic = STACK["PubSubTopicArn"]
        iam = aws("iam")
        role = RESOURCES["DeliverFunctionRole"]
        policy_name = unique("test-only-ministack-sns-publish-batch")
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sns:PublishBatch", "Resource": topic}],
        }))
        self.addCleanup(iam.delete_role_policy, RoleName=role, PolicyName=policy_name)
        sns = aws("sns")
        url, arn = self.queue("sns.amazonaws.com", topic)
        subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                                     Attributes={"RawMessageDelivery": "true"},
                                     ReturnSubscriptionArn=True)["SubscriptionArn"]
        self.addCleanup(sns.unsubscribe, SubscriptionArn=subscription)

        client = self.connect()

        def connected(message):
            event = json.loads(message["Body"])
            if event.get("type") == "hotsock.connected" \
                    and event["data"].get("id") == client.connection_id:
                return message
            return None

        message = read_until(url, connected, attributes=True)
        self.assert_connected_event(json.loads(message["Body"]), client)
        attributes = {name: (a["DataType"], a["StringValue"])
                      for name, a in message.get("MessageAttributes", {}).items()}
        self.assertEqual(attributes.get("source"), ("String", "hotsock.v1"), attributes)
        self.assertEqual(attributes.get("type"), ("String", "hotsock.connected"))
        self.assertEqual(attributes.get("dataType"), ("String", "connection"))
        self.assertNotIn("hotsockVersion", attributes)


if __name__ == "__main__":
    unittest.main()
