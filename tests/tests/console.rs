//! The web console's routes on the HTTP function (the local stage mounts the
//! same router, and a stack serves them from its function URL): the page and
//! its assets as embedded, its config, and `POST /console/explain`, whose
//! explanation must be what the stage then enforces.

use serde_json::{json, Value};
use sockhop_tests::{now, root, sign, TestStage};

/// Without following redirects, so `/console/` shows its own answer.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get(stage: &TestStage, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", stage.stage.http_url()))
        .send()
        .await
        .expect("answer")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn explain(stage: &TestStage, body: Value) -> Value {
    let response = stage
        .http
        .post(format!("{}/console/explain", stage.stage.http_url()))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_as_the_repository_has_them() {
    let stage = TestStage::start().await;
    let page = get(&stage, "/console").await;
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert!(header(&page, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    let html = page.text().await.expect("body");
    assert_eq!(
        html,
        std::fs::read_to_string(root().join("console/index.html")).expect("file")
    );
    for (path, file, content_type) in [
        (
            "/console/console.js",
            "console/console.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/console/console.css",
            "console/console.css",
            "text/css; charset=utf-8",
        ),
        (
            "/console/hotsock-lite.js",
            "examples/lib/hotsock-lite.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let response = get(&stage, path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let body = response.text().await.expect("body");
        assert_eq!(
            body,
            std::fs::read_to_string(root().join(file)).expect("file"),
            "{path} is the repository's {file}"
        );
    }
    // The trailing-slash form goes to the page (whose relative asset paths
    // need it without), keeping the query.
    let slash = get(&stage, "/console/?wssUrl=wss%3A%2F%2Fx%2Fv1").await;
    assert_eq!(slash.status().as_u16(), 308);
    assert_eq!(
        header(&slash, "location"),
        "../console?wssUrl=wss%3A%2F%2Fx%2Fv1"
    );
    assert_eq!(
        header(&get(&stage, "/console/").await, "location"),
        "../console"
    );
    assert_eq!(
        get(&stage, "/console/other.js").await.status().as_u16(),
        404
    );
}

#[tokio::test]
async fn config_names_the_stages_websocket_url_and_every_code() {
    let stage = TestStage::start().await;
    let config: Value = get(&stage, "/console/config")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(config["webSocketUrl"], stage.stage.websocket_url());
    for code in [
        "TOKEN_EXPIRED",
        "TOKEN_CONNECTION_ID_NOT_ALLOWED",
        "SUBSCRIBE_PERMISSION_DENIED",
        "INTERNAL_ERROR",
    ] {
        assert!(
            config["errorCodes"][code]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{code}"
        );
    }
}

#[tokio::test]
async fn explain_says_why_a_token_is_refused_and_spends_nothing() {
    let stage = TestStage::start().await;
    let ok = explain(
        &stage,
        json!({"token": sign(json!({"scope": "connect", "uid": "jim"}))}),
    )
    .await;
    assert_eq!(
        ok["token"],
        json!({"ok": true, "verified": true, "scopes": ["connect"], "singleUse": false,
               "code": null, "status": null, "message": null, "meaning": null})
    );
    for (body, code, status) in [
        (json!({}), "TOKEN_MISSING", 401),
        (json!({"token": "  "}), "TOKEN_MISSING", 401),
        (json!({"token": "not.a.jwt"}), "TOKEN_MALFORMED", 401),
        (
            json!({"token": sign(json!({"scope": "connect", "exp": now() - 5})), "channel": "c"}),
            "TOKEN_EXPIRED",
            401,
        ),
        (
            json!({"token": sockhop::token::sign_hs256(b"another key entirely", &json!({"scope": "connect", "exp": now() + 60}))}),
            "TOKEN_BAD_SIGNATURE",
            401,
        ),
        (
            json!({"token": sign(json!({"scope": "connect", "uid": "x".repeat(129)}))}),
            "TOKEN_INVALID_CLAIMS",
            401,
        ),
        (
            json!({"token": sign(json!({"scope": "subscribe"}))}),
            "TOKEN_SCOPE_NOT_CONNECT",
            403,
        ),
        (
            json!({"token": sign(json!({"scope": "connect", "connectionId": "abc="}))}),
            "TOKEN_CONNECTION_ID_NOT_ALLOWED",
            403,
        ),
    ] {
        let reply = explain(&stage, body.clone()).await;
        let token = &reply["token"];
        assert_eq!(
            (&token["ok"], &token["code"], &token["status"]),
            (&json!(false), &json!(code), &json!(status)),
            "{body}: {reply}"
        );
        assert!(
            token["meaning"].as_str().is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
        assert!(token["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // What the stage itself answers the upgrade with, for one of them.
    let expired = sign(json!({"scope": "connect", "exp": now() - 5}));
    let (status, body) = stage.try_connect(&expired).await.err().expect("refused");
    assert_eq!(status, 401);
    assert!(body.contains("TOKEN_EXPIRED"), "{body}");

    // A single-use token: explaining spends nothing; once used, it says so.
    let once =
        sign(json!({"scope": "connect", "singleUse": true, "jti": ulid::Ulid::new().to_string()}));
    let before = explain(&stage, json!({"token": once})).await;
    assert_eq!(
        (&before["token"]["ok"], &before["token"]["singleUse"]),
        (&json!(true), &json!(true))
    );
    let mut client = stage.try_connect(&once).await.expect("still unused");
    client.expect_event("hotsock.connected").await;
    let after = explain(&stage, json!({"token": once})).await;
    assert_eq!(after["token"]["code"], "TOKEN_ALREADY_USED", "{after}");
    assert_eq!(after["token"]["status"], 401);

    // A body that is not the request's shape.
    for bad in ["nope", r#"{"token": 5}"#] {
        let response = stage
            .http
            .post(format!("{}/console/explain", stage.stage.http_url()))
            .body(bad)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 400, "{bad}");
        let reply: Value = response.json().await.expect("json");
        assert_eq!(reply["error"]["code"], "INVALID_REQUEST");
    }
}

#[tokio::test]
async fn the_explanation_is_what_the_stage_enforces() {
    let stage = TestStage::start().await;
    let claims = json!({"scope": "connect", "uid": "jim", "channels": {
        "room-*": {"subscribe": true, "messages": {"*": {"publish": true}, "secret": {"publish": false}}},
        "#regex:^room-4[0-9]$": {"subscribe": false},
    }});
    let token = sign(claims.clone());
    let denied = explain(
        &stage,
        json!({"token": token, "channel": "room-42", "event": "secret"}),
    )
    .await;
    let channel = &denied["channel"];
    assert_eq!(channel["channel"], "room-42");
    assert_eq!(
        channel["matched"],
        json!([{"key": "#regex:^room-4[0-9]$", "kind": "regex"}, {"key": "room-*", "kind": "wildcard"}])
    );
    let subscribe = &channel["directives"][0];
    assert_eq!(subscribe["name"], "subscribe");
    assert_eq!(subscribe["value"], false);
    assert_eq!(
        subscribe["why"],
        r##"explicit false in regex key "#regex:^room-4[0-9]$" wins over true in wildcard key "room-*""##
    );
    let publish = channel["event"]["directives"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "publish"))
        .expect("publish");
    assert_eq!(publish["value"], false);
    let allowed = explain(
        &stage,
        json!({"token": token, "channel": "room-7", "event": "chat"}),
    )
    .await;
    assert_eq!(allowed["channel"]["directives"][0]["value"], true);

    // The stage does what the explanation says.
    let mut jim = stage.connect(claims).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "room-42"}))
        .await;
    jim.expect_error("SUBSCRIBE_PERMISSION_DENIED", Some("room-42"))
        .await;
    assert_eq!(jim.subscribe("room-7").await["event"], "hotsock.subscribed");
    jim.send(json!({"channel": "room-7", "event": "secret", "data": 1}))
        .await;
    jim.expect_error("PUBLISH_PERMISSION_DENIED", Some("room-7"))
        .await;
}
