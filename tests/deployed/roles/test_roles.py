"""The second line of the least-privilege proof, on the deployed stack (the first is
tests/tests/grants.rs, which requires each role in template.yaml to grant exactly what
each function's code paths need).

Run after the rest of tests/deployed (scripts/test.sh runs it last), so the functions'
logs hold every path that suite exercised. Every invocation of a Sockhop function logs
the IAM actions its process has needed (`iamActions` in its Embedded Metric Format
line, counted by the SDK interceptor from the requests themselves). Here each of those is checked against the
policy MiniStack actually attached to that function's role, and no function may have
been refused an AWS call, apart from the emulator's own documented misreadings of IAM.
"""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from harness import RESOURCES, aws  # noqa: E402

FUNCTIONS = {
    "ConnectFunction": "connect",
    "DisconnectFunction": "disconnect",
    "DefaultFunction": "default",
    "DeliverFunction": "deliver",
    "HttpFunction": "http",
    "PublishFunction": "publish",
    "StreamFunction": "stream",
    "SweeperFunction": "sweeper",
}

# What MiniStack 1.5.33 refuses although AWS allows it with the template's grants
# (docs/deploy.md, "The emulated deploy"): it authorizes SNS PublishBatch as
# sns:PublishBatch (AWS: sns:Publish). (It also checks CreateSchedule against the
# `default` schedule group; the suite's scheduling test grants that for itself, so a
# refused CreateSchedule here is a real one.)
EMULATOR_MISREADINGS = ("sns:PublishBatch",)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_group(function: str) -> str:
    # template.yaml names each function's log group /aws/lambda/<stack>-<name>.
    return f"/aws/lambda/{os.environ.get('SOCKHOP_STACK', 'sockhop')}-{function}"


def messages(group: str) -> list:
    logs = aws("logs")
    found, token = [], None
    while True:
        kwargs = {"logGroupName": group, "startTime": 0}
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        found += [ANSI.sub("", e["message"]) for e in page.get("events", [])]
        token = page.get("nextToken")
        if not token:
            return found


def needed_actions(lines: list) -> set:
    """The union of the IAM actions the function's invocations logged: each
    invocation prints one Embedded Metric Format line (shared/src/runtime/lambda.rs,
    `Invocation::log_end`) whose `iamActions` are what its process needed."""
    needed = set()
    for line in lines:
        start = line.find('{"_aws"')
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        needed.update(record.get("iamActions", []))
    return needed


def role_statements(function_name: str) -> list:
    """The Allow statements of the function's role as deployed."""
    role_arn = aws("lambda").get_function(FunctionName=function_name)["Configuration"]["Role"]
    role = role_arn.rsplit("/", 1)[1]
    iam = aws("iam")
    statements = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        body = document["Statement"]
        statements += body if isinstance(body, list) else [body]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        statements.append({"Effect": "Allow", "Action": [], "Managed": attached["PolicyArn"]})
    return [s for s in statements if s.get("Effect") == "Allow"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allows(statements: list, needed: str) -> bool:
    """Whether some statement allows the action the interceptor named (`action` or
    `action qualifier`, see shared/src/metrics.rs iam_actions) on the right resource."""
    action, _, qualifier = needed.partition(" ")
    for statement in statements:
        if action not in as_list(statement.get("Action", [])):
            continue
        resources = [str(r) for r in as_list(statement.get("Resource", []))]
        if action.startswith("dynamodb:"):
            wanted = f"/{qualifier}" if qualifier else None
            if any(r.endswith(wanted) if wanted else "/index/" not in r for r in resources):
                return True
        elif action == "execute-api:ManageConnections":
            if any(f"/{qualifier}/@connections/" in r for r in resources):
                return True
        elif resources:
            return True
    return False


class Roles(unittest.TestCase):
    def test_every_action_a_function_needed_is_granted_to_its_role(self):
        """Each function's logged IAM actions are allowed by its deployed role, and
        every function needed at least one (its logs were read, the check bit)."""
        problems, seen = [], {}
        for logical, name in FUNCTIONS.items():
            lines = messages(log_group(name))
            needed = needed_actions(lines)
            seen[logical] = needed
            statements = role_statements(RESOURCES[logical])
            for action in sorted(needed):
                if not allows(statements, action):
                    problems.append(f"{logical} needed {action}, which its role does not grant")
        self.assertEqual(problems, [], "\n  " + "\n  ".join(problems))
        silent = [f for f, actions in seen.items() if not actions]
        self.assertEqual(silent, [], f"functions that logged no AWS request: {silent}")
        print("\nIAM actions each deployed function needed in this run:", file=sys.stderr)
        for logical, actions in seen.items():
            print(f"  {logical:<20} {', '.join(sorted(actions))}", file=sys.stderr)

    def test_no_function_was_refused_an_aws_call(self):
        """No function's log shows an authorization failure, except the emulator's own
        misreadings of IAM (EMULATOR_MISREADINGS)."""
        refused = []
        for name in FUNCTIONS.values():
            for line in messages(log_group(name)):
                if re.search(r"not authorized|AccessDenied", line) and not any(
                    quirk in line for quirk in EMULATOR_MISREADINGS
                ):
                    refused.append(f"{name}: {line[:400]}")
        self.assertEqual(refused, [], "\n  " + "\n  ".join(refused))


if __name__ == "__main__":
    unittest.main()
