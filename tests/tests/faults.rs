//! The stage under faults: clients that vanish during `$connect`, readers that
//! stall, and DynamoDB going away mid-stream.

use futures::StreamExt;
use serde_json::{json, Value};
use sockhop_tests::{root, Client, TestStage};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

async fn eventually<F, Fut>(what: &str, wait: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < wait {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A client that sends the upgrade request and hangs up without waiting for
/// the answer leaves no connection, subscription or count behind: `$connect`
/// runs to its end and is followed by `$disconnect`, as in API Gateway.
#[tokio::test]
async fn a_client_gone_during_connect_leaves_nothing_behind() {
    let stage = TestStage::start().await;
    let token = sockhop_tests::sign(json!({"scope": "connect", "uid": "ghost",
        "channels": {"lobby": {"subscribe": true, "autoSubscribe": true}}}));
    let url = url::Url::parse(&stage.ws_url(&token)).expect("url");
    let address = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let request = format!(
        "GET {}?{} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        url.path(),
        url.query().expect("query")
    );
    for round in 0..30u64 {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.expect("tcp");
        tcp.write_all(request.as_bytes()).await.expect("request");
        // Hang up at different moments of the connect.
        tokio::time::sleep(Duration::from_millis(round % 6 * 4)).await;
        drop(tcp);
    }
    // One client that stays proves the channel works and is counted.
    let mut stays = stage
        .connect(json!({"scope": "connect", "uid": "stays",
            "channels": {"lobby": {"subscribe": true, "autoSubscribe": true}}}))
        .await;
    eventually(
        "the vanished clients' items are gone",
        Duration::from_secs(20),
        || async {
            stage.items_with_pk_prefix("CONN#").await.len() == 2
                && stage.subscriptions_count("lobby").await == 1
        },
    )
    .await;
    assert_eq!(
        stage.stage.registry.count(),
        1,
        "only the live socket is known"
    );
    stays.send(json!({"event": "hotsock.ping"})).await;
    stays.expect_event("hotsock.pong").await;
}

/// A subscriber that stops reading is closed once its outgoing queue is full,
/// while another subscriber of the same channel gets every message in order.
#[tokio::test]
async fn a_stalled_reader_is_closed_and_never_holds_up_the_others() {
    let stage = TestStage::start().await;
    let claims = |uid: &str| json!({"scope": "connect", "uid": uid, "channels": {"feed": {"subscribe": true}}});
    let mut reader = stage.connect(claims("reader")).await;
    reader.subscribe("feed").await;
    let mut stalled = stage.connect(claims("stalled")).await;
    stalled.subscribe("feed").await;
    assert_eq!(stage.subscriptions_count("feed").await, 2);

    // ~24 MB: more than the socket buffers and the stage's queue together.
    let filler = "x".repeat(30 * 1024);
    let total = 800;
    let publishing = async {
        let bodies: Vec<Value> = (0..total)
            .map(|n| json!({"channel": "feed", "event": "chunk", "data": {"n": n, "filler": filler}}))
            .collect();
        for chunk in bodies.chunks(8) {
            let answers = futures::future::join_all(
                chunk.iter().map(|body| stage.server_publish(body.clone())),
            )
            .await;
            for (status, reply) in answers {
                assert_eq!(status, 202, "{reply}");
            }
        }
    };
    let reading = async {
        let mut seen = BTreeMap::new();
        while seen.len() < total {
            let frame = reader.expect_event("chunk").await;
            let n = frame["data"]["n"].as_u64().expect("n");
            seen.insert(n, ());
        }
        seen.len()
    };
    let ((), received) = tokio::join!(publishing, reading);
    assert_eq!(received, total, "the reading subscriber got everything");
    eventually(
        "the stalled subscriber is dropped",
        Duration::from_secs(30),
        || async { stage.subscriptions_count("feed").await == 1 },
    )
    .await;
    // The stalled client, reading at last, finds its socket closed.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(frame) = stalled.socket.next().await {
            match frame {
                Ok(tokio_tungstenite::tungstenite::Message::Close(close)) => {
                    return close.map(|c| u16::from(c.code))
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled socket ends");
    assert!(matches!(closed, Some(1008) | None), "{closed:?}");
}

/// A DynamoDB Local the test owns, with its data on disk, that can be killed
/// and started again on the same port.
struct OwnDynamoDb {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl OwnDynamoDb {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("sockhop-outage-{}", ulid::Ulid::new()));
        let mut db = OwnDynamoDb {
            port,
            dir,
            child: None,
        };
        db.up();
        db
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = Command::new(root().join("infra/dynamodb-local/start.sh"))
            .env("PORT", self.port.to_string())
            .env("DATA_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("DynamoDB Local starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "DynamoDB Local is up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the database vanishes mid-request, as in a crash.
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnDynamoDb {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// DynamoDB stops and comes back while a server publishes, stored and unstored
/// messages alike: every publish answered 202 reaches every subscriber exactly
/// once and in order, and the sockets stay open throughout.
#[tokio::test]
async fn every_acknowledged_message_survives_a_database_outage_exactly_once() {
    let mut db = OwnDynamoDb::start();
    let endpoint = db.endpoint();
    let stage = TestStage::start_with(|options| options.dynamodb_endpoint = Some(endpoint)).await;
    let claims = |uid: &str| json!({"scope": "connect", "uid": uid, "channels": {"ticks": {"subscribe": true}}});
    let mut subscribers: Vec<Client> = Vec::new();
    for uid in ["a", "b", "c"] {
        let mut client = stage.connect(claims(uid)).await;
        client.subscribe("ticks").await;
        subscribers.push(client);
    }
    let mut acknowledged = Vec::new();
    // A server publish needs no database: during the outage it is still
    // queued and answered 202, or refused with a 5xx, never lost after a 202.
    let mut refused = 0;
    let mut n = 0u64;
    for phase in 0..3 {
        if phase == 1 {
            db.down();
        }
        // The outage outlasts the SDK's own retries of a request several times over.
        let phase_length = if phase == 1 { 4_000 } else { 1_500 };
        let until = Instant::now() + Duration::from_millis(phase_length);
        while Instant::now() < until {
            let store = if n.is_multiple_of(2) { 0 } else { 60 };
            let (status, _) = stage
                .server_publish(
                    json!({"channel": "ticks", "event": "tick", "data": {"n": n}, "store": store}),
                )
                .await;
            match status {
                202 => acknowledged.push(n),
                500..=599 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if phase == 1 {
            db.up();
        }
    }
    assert!(
        acknowledged.len() > 50,
        "{} acknowledged",
        acknowledged.len()
    );
    // Behind every acknowledged tick on the channel's path: a repeat would
    // come before it.
    stage.publish_marker("ticks").await;
    for client in &mut subscribers {
        let mut got = Vec::new();
        while got.len() < acknowledged.len() {
            let frame = client
                .next_within(Duration::from_secs(40))
                .await
                .unwrap_or_else(|| panic!("missing after {got:?}"));
            if frame["event"] == "tick" {
                got.push(frame["data"]["n"].as_u64().expect("n"));
            }
        }
        assert_eq!(
            got, acknowledged,
            "every acknowledged message once, in order"
        );
        client.expect_next_event("marker").await;
    }
    assert_eq!(stage.stage.queue.stats().dead_letters, 0);
    // The sockets stayed open: each still answers.
    for client in &mut subscribers {
        client.send(json!({"event": "hotsock.ping"})).await;
        client.expect_event("hotsock.pong").await;
    }
    assert!(refused < n, "some publishes were acknowledged");
}
