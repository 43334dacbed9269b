"""The web console of the deployed stack: the `WebConsoleHttpUrl` output serves the page
(with its script, styles and the bundled client, all from the http function), the
page's config names the stack's own WebSocket URL, and `console/explain` tells why a
token is refused (examples/tests/console.test.mjs drives the page in Chromium against
the local stage, tests/tests/console.rs the routes)."""

import json
import unittest
import urllib.error
import urllib.request

from harness import HTTP_API_URL, STACK, WEBSOCKET_URL, http_post, now, sign, unique


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def http_get(url: str):
    """GETs `url` without following redirects: (status, headers, body text)."""
    try:
        with _opener.open(urllib.request.Request(url), timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def console_url() -> str:
    """The output's URL on the emulator: MiniStack serves function URLs path-style, so
    the output's `https://{url-id}.lambda-url.…/` prefix (the `HttpApiUrl` output) maps
    to the harness's HTTP API URL, as for every other route."""
    output, base = STACK["WebConsoleHttpUrl"], STACK["HttpApiUrl"]
    if not output.startswith(base):
        raise AssertionError(f"WebConsoleHttpUrl {output} is not under HttpApiUrl {base}")
    return HTTP_API_URL + output[len(base):]


class WebConsole(unittest.TestCase):
    def test_the_output_names_the_console_of_the_http_function(self):
        self.assertTrue(STACK["HttpApiUrl"].endswith("/"), STACK)
        self.assertEqual(STACK["WebConsoleHttpUrl"], STACK["HttpApiUrl"] + "console")

    def test_the_output_url_serves_the_console_page(self):
        status, headers, body = http_get(console_url())
        self.assertEqual(status, 200, body[:300])
        self.assertTrue(headers["content-type"].startswith("text/html"), headers)
        self.assertIn("<title>Sockhop console</title>", body)
        self.assertIn('src="console/console.js"', body)
        self.assertIn("frame-ancestors 'none'", headers.get("content-security-policy", ""))

    def test_its_assets_come_from_the_same_function(self):
        base = console_url()
        for path, content_type, needle in [
            ("/console.js", "text/javascript", 'from "./hotsock-lite.js"'),
            ("/hotsock-lite.js", "text/javascript", "export class HotsockClient"),
            ("/console.css", "text/css", ".frames"),
        ]:
            status, headers, body = http_get(base + path)
            self.assertEqual(status, 200, f"{path}: {body[:200]}")
            self.assertTrue(headers["content-type"].startswith(content_type), f"{path}: {headers}")
            self.assertIn(needle, body, path)
        # The trailing-slash form sends the browser to the page, query kept.
        status, headers, _ = http_get(base + "/?wssUrl=x")
        self.assertEqual((status, headers.get("location")), (308, "../console?wssUrl=x"))

    def test_the_page_defaults_to_the_stacks_own_websocket_url(self):
        status, _, body = http_get(console_url() + "/config")
        self.assertEqual(status, 200, body)
        config = json.loads(body)
        self.assertEqual(config["webSocketUrl"], WEBSOCKET_URL.rstrip("/"))
        self.assertIn("TOKEN_EXPIRED", config["errorCodes"])

    def test_explain_says_why_a_token_is_refused(self):
        channel = unique("room")
        claims = {"scope": "connect", "uid": "jim", "channels": {channel: {"subscribe": True}}}
        status, reply = http_post(f"{HTTP_API_URL}console/explain", {"token": sign(claims)})
        self.assertEqual(status, 200, reply)
        self.assertTrue(reply["token"]["ok"], reply)
        status, reply = http_post(
            f"{HTTP_API_URL}console/explain", {"token": sign({**claims, "exp": now() - 5})}
        )
        self.assertEqual(status, 200, reply)
        self.assertEqual(
            (reply["token"]["ok"], reply["token"]["code"], reply["token"]["status"]),
            (False, "TOKEN_EXPIRED", 401),
        )
        self.assertTrue(reply["token"]["meaning"], reply)

    def test_explain_explains_a_channel_as_the_stack_resolves_it(self):
        prefix = unique("room")
        token = sign({"scope": "connect", "uid": "jim", "channels": {
            f"{prefix}-*": {"subscribe": True},
            f"#regex:^{prefix}-4[0-9]$": {"subscribe": False},
        }})
        status, reply = http_post(
            f"{HTTP_API_URL}console/explain", {"token": token, "channel": f"{prefix}-42"}
        )
        self.assertEqual(status, 200, reply)
        subscribe = reply["channel"]["directives"][0]
        self.assertEqual((subscribe["name"], subscribe["value"]), ("subscribe", False), reply)
        self.assertEqual(
            sorted((s["kind"], s["outcome"]) for s in subscribe["sources"]),
            [("regex", "wins"), ("wildcard", "overruled")],
        )


if __name__ == "__main__":
    unittest.main()
