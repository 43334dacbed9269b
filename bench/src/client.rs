//! The bench's WebSocket clients and publisher. Every client timestamps what
//! it receives the moment it reads it (microseconds on one clock shared by the
//! whole bench process) and reports to one [`Hub`] the orchestrator reads.

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the bench started: the timestamp publishers put in
/// messages and receivers subtract from.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What a client saw.
#[derive(Debug)]
pub enum Event {
    Subscribed {
        conn: usize,
        channel: String,
        /// Sockhop's resume: the position a resumable subscription starts at,
        /// and whether a resume recovered everything.
        position: Option<String>,
        recovered: Option<bool>,
    },
    /// A bench message (`data.bench`), with when it was sent and received.
    Bench {
        conn: usize,
        run: u64,
        seq: u64,
        sent_us: u64,
        at_us: u64,
        id: Option<String>,
    },
    /// Any other frame (errors, reactions, ...).
    Frame {
        conn: usize,
        event: String,
        text: String,
    },
}

pub struct Client {
    pub index: usize,
    pub connection_id: String,
    pub connection_secret: String,
    outbox: mpsc::UnboundedSender<Message>,
    tasks: [JoinHandle<()>; 2],
}

impl Client {
    pub fn send(&self, frame: &Value) -> anyhow::Result<()> {
        self.outbox
            .send(Message::text(frame.to_string()))
            .ok()
            .context("the connection is closed")
    }

    pub fn subscribe(&self, channel: &str) -> anyhow::Result<()> {
        self.send(&json!({"event": "hotsock.subscribe", "channel": channel}))
    }

    /// A close frame; the socket goes when the server answers (or is dropped).
    pub fn close(&self) {
        let _ = self.outbox.send(Message::Close(None));
    }

    /// Whether the reader has ended (the server closed the socket).
    pub fn is_closed(&self) -> bool {
        self.tasks[0].is_finished()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Opens a WebSocket and waits for its `hotsock.connected` greeting.
pub async fn connect(
    url: &str,
    index: usize,
    events: mpsc::UnboundedSender<Event>,
    timeout: Duration,
) -> anyhow::Result<Client> {
    let connecting = tokio_tungstenite::connect_async_with_config(url, None, true);
    let (socket, _) = tokio::time::timeout(timeout, connecting)
        .await
        .context("WebSocket upgrade timed out")?
        .context("WebSocket upgrade failed")?;
    let (mut sink, mut source) = socket.split();
    let (outbox, mut queued) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    let (greeted, greeting) = oneshot::channel::<(String, String)>();
    let reader = tokio::spawn(async move {
        let mut greeted = Some(greeted);
        while let Some(Ok(message)) = source.next().await {
            let at_us = now_us();
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => break,
                _ => continue,
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let event = frame["event"].as_str().unwrap_or_default();
            let data = &frame["data"];
            let report = match event {
                "hotsock.connected" => {
                    if let Some(greeted) = greeted.take() {
                        let id = data["connectionId"].as_str().unwrap_or_default();
                        let secret = data["connectionSecret"].as_str().unwrap_or_default();
                        let _ = greeted.send((id.to_owned(), secret.to_owned()));
                    }
                    continue;
                }
                "hotsock.subscribed" => Event::Subscribed {
                    conn: index,
                    channel: frame["channel"].as_str().unwrap_or_default().to_owned(),
                    position: data["position"].as_str().map(str::to_owned),
                    recovered: data["recovered"].as_bool(),
                },
                _ => match bench_mark(data) {
                    Some((run, seq, sent_us)) => Event::Bench {
                        conn: index,
                        run,
                        seq,
                        sent_us,
                        at_us,
                        id: frame["id"].as_str().map(str::to_owned),
                    },
                    None => Event::Frame {
                        conn: index,
                        event: event.to_owned(),
                        text: text.to_string(),
                    },
                },
            };
            if events.send(report).is_err() {
                break;
            }
        }
    });
    let tasks = [reader, writer];
    let (connection_id, connection_secret) = match tokio::time::timeout(timeout, greeting).await {
        Ok(Ok(greeting)) => greeting,
        Ok(Err(_)) => {
            tasks.iter().for_each(JoinHandle::abort);
            bail!("the socket closed before hotsock.connected");
        }
        Err(_) => {
            tasks.iter().for_each(JoinHandle::abort);
            bail!("no hotsock.connected within {timeout:?}");
        }
    };
    Ok(Client {
        index,
        connection_id,
        connection_secret,
        outbox,
        tasks,
    })
}

/// `data.bench` of a bench message: (run, seq, sentUs).
fn bench_mark(data: &Value) -> Option<(u64, u64, u64)> {
    let mark = data.get("bench")?;
    Some((
        mark["run"].as_u64()?,
        mark["seq"].as_u64()?,
        mark["sentUs"].as_u64()?,
    ))
}

/// The `data` of bench message `seq` of `run`, stamped now.
pub fn bench_data(run: u64, seq: u64) -> Value {
    json!({"bench": {"run": run, "seq": seq, "sentUs": now_us()}})
}

/// One receipt of a bench message.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub sent_us: u64,
    pub at_us: u64,
    pub id: Option<String>,
}

impl Receipt {
    pub fn latency_us(&self) -> u64 {
        self.at_us.saturating_sub(self.sent_us)
    }
}

/// Where every client reports.
pub struct Hub {
    pub tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// `hotsock.error` frames seen (printed once, counted).
    pub errors: u64,
}

impl Hub {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Hub { tx, rx, errors: 0 }
    }

    /// The next event before `deadline` (`hotsock.error` frames are counted).
    pub async fn next(&mut self, deadline: Instant) -> Option<Event> {
        let event = tokio::time::timeout_at(deadline.into(), self.rx.recv())
            .await
            .ok()??;
        if let Event::Frame { event, text, .. } = &event {
            if event == "hotsock.error" {
                if self.errors < 5 {
                    eprintln!("  (a client received an error: {text})");
                }
                self.errors += 1;
            }
        }
        Some(event)
    }

    /// Drops whatever is waiting (late frames of an earlier step).
    pub fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits for `n` `hotsock.subscribed` frames for `channel`.
    pub async fn subscribed(
        &mut self,
        channel: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        while seen < n {
            match self.next(deadline).await {
                Some(Event::Subscribed { channel: c, .. }) if c == channel => seen += 1,
                Some(_) => {}
                None => bail!("{seen} of {n} subscriptions to {channel} confirmed in {timeout:?}"),
            }
        }
        Ok(())
    }

    /// Collects `n` receipts of `run` (of message `seq` only, when given).
    pub async fn receipts(
        &mut self,
        run: u64,
        seq: Option<u64>,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Receipt>> {
        let deadline = Instant::now() + timeout;
        let mut receipts = Vec::with_capacity(n);
        while receipts.len() < n {
            match self.next(deadline).await {
                Some(Event::Bench {
                    run: r,
                    seq: s,
                    sent_us,
                    at_us,
                    id,
                    ..
                }) if r == run && seq.is_none_or(|want| want == s) => {
                    receipts.push(Receipt { sent_us, at_us, id })
                }
                Some(_) => {}
                None => bail!(
                    "{} of {n} deliveries of run {run}{} arrived within {timeout:?}",
                    receipts.len(),
                    seq.map_or_else(String::new, |s| format!(" message {s}"))
                ),
            }
        }
        Ok(receipts)
    }

    /// Waits for a frame with this event name on connection `conn`.
    pub async fn frame(
        &mut self,
        conn: usize,
        event: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline).await {
                Some(Event::Frame {
                    conn: c,
                    event: e,
                    text,
                }) if c == conn && e == event => return Ok(text),
                Some(_) => {}
                None => bail!("no {event} frame within {timeout:?}"),
            }
        }
    }
}

/// Server publishes (`POST /publish`), to the stage or the bare server.
#[derive(Clone)]
pub struct Publisher {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Publisher {
    pub fn new(base_url: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Publisher {
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(8)
                .build()?,
            url: format!("{base_url}/publish"),
            key: key.to_owned(),
        })
    }

    /// Publishes bench message `seq` of `run` to `channel`, stamped just
    /// before the request goes out; `store` seconds (0: not stored).
    pub async fn publish(
        &self,
        channel: &str,
        run: u64,
        seq: u64,
        store: i64,
    ) -> anyhow::Result<()> {
        let (status, text) = self.post(channel, run, seq, store).await?;
        if !status.is_success() {
            bail!("POST /publish: {status} {text}");
        }
        Ok(())
    }

    /// Like [`Publisher::publish`], but whatever the server answers is
    /// returned (status and body); an error only when no answer came.
    pub async fn post(
        &self,
        channel: &str,
        run: u64,
        seq: u64,
        store: i64,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let body = json!({
            "channel": channel,
            "event": "bench",
            "data": bench_data(run, seq),
            "store": store,
        });
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("POST /publish")?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}
