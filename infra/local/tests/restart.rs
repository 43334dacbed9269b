//! The `sockhop-local` binary keeps its data across restarts: stored messages
//! survive, the connections of the earlier run are ended (their sockets died
//! with it), and nothing of the earlier run is replayed to new clients.

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// TEST-ONLY keys of this test's stages.
const SECRET: &[u8] = b"TEST-ONLY restart test signing secret";
const API_KEY: &str = "TEST-ONLY-restart-api-key";

struct Running {
    child: Child,
    ws: String,
    http: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn start(data_dir: &std::path::Path) -> Running {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockhop-local"))
        .args(["--port", "0", "--table", "restart-test", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env("SIGNING_KEY_1_METHOD", "HS256")
        .env("SIGNING_KEY_1_ENCODED", b64(SECRET))
        .env(
            "CONNECTION_SECRET_KEY",
            b64(b"TEST-ONLY restart connection key"),
        )
        .env("HTTP_API_KEY_1", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sockhop-local starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut ws, mut http) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.expect("line");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["WebSocket", "URL", url] => ws = (*url).to_owned(),
            ["HTTP", "API", "URL", url] => http = (*url).to_owned(),
            _ => {}
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        !ws.is_empty() && !http.is_empty(),
        "the stage printed its URLs"
    );
    Running { child, ws, http }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_event(socket: &mut Socket, event: &str) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {event} in time"));
        if let Some(Ok(Message::Text(text))) = frame {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value["event"] == event {
                return value;
            }
        } else if !matches!(frame, Some(Ok(_))) {
            panic!("socket ended waiting for {event}: {frame:?}");
        }
    }
}

/// Connects as `uid`, subscribes to `log` and `presence.room`; returns the
/// socket, the connection credentials and the member list it joined.
async fn join(stage: &Running, uid: &str) -> (Socket, String, String, Value) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = sockhop::token::sign_hs256(
        SECRET,
        &json!({"scope": "connect", "uid": uid, "exp": now + 600, "channels": {
            "log": {"subscribe": true, "historyStart": 0},
            "presence.room": {"subscribe": true}
        }}),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", stage.ws))
        .await
        .expect("connected");
    let connected = next_event(&mut socket, "hotsock.connected").await;
    let id = connected["data"]["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let secret = connected["data"]["connectionSecret"]
        .as_str()
        .expect("secret")
        .to_owned();
    for channel in ["log", "presence.room"] {
        let frame = json!({"event": "hotsock.subscribe", "channel": channel}).to_string();
        socket
            .send(Message::Text(frame.into()))
            .await
            .expect("sent");
    }
    next_event(&mut socket, "hotsock.subscribed").await;
    let members = next_event(&mut socket, "hotsock.subscribed").await["data"]["members"].clone();
    (socket, id, secret, members)
}

#[tokio::test]
async fn kept_data_survives_a_restart_and_old_connections_end() {
    let dir = std::env::temp_dir().join(format!("sockhop-restart-{}", ulid::Ulid::new()));
    let http = reqwest::Client::new();
    {
        let first = start(&dir);
        let (mut jim, _, _, members) = join(&first, "jim").await;
        assert_eq!(members, json!([{"uid": "jim", "umd": null}]));
        let reply = http
            .post(format!("{}/publish", first.http))
            .bearer_auth(API_KEY)
            .json(&json!({"channel": "log", "event": "entry", "data": "kept", "store": 600}))
            .send()
            .await
            .expect("published");
        assert_eq!(reply.status().as_u16(), 202);
        assert_eq!(next_event(&mut jim, "entry").await["data"], "kept");
    }
    let second = start(&dir);
    let (mut pam, id, secret, members) = join(&second, "pam").await;
    // Jim's connection ended with the first run: he is no member any more.
    assert_eq!(members, json!([{"uid": "pam", "umd": null}]));
    let page: Value = http
        .post(format!(
            "{}/connection/listMessages?connectionId={id}&connectionSecret={secret}",
            second.http
        ))
        .json(&json!({"channel": "log"}))
        .send()
        .await
        .expect("listed")
        .json()
        .await
        .expect("json");
    let data: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["data"])
        .collect();
    assert_eq!(
        data,
        [&json!("kept")],
        "the stored message survived: {page}"
    );
    // Nothing of the first run is replayed to the new connection.
    let quiet = tokio::time::timeout(Duration::from_millis(800), pam.next()).await;
    assert!(quiet.is_err(), "unexpected frame: {quiet:?}");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
