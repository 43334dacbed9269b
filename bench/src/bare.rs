//! The network floor: a bare tokio-tungstenite broadcast server, with the
//! client-facing shape of the stage reduced to what the bench uses, and no
//! work beyond moving bytes:
//!
//! - any WebSocket upgrade is accepted and greeted with a `hotsock.connected`
//!   frame at once;
//! - `{"event":"hotsock.subscribe","channel":C}` joins C and is answered with
//!   `hotsock.subscribed`;
//! - `POST /publish` with a JSON body `{"channel":C,...}` sends the body, as it
//!   is, to every member of C, then answers `202`.
//!
//! It runs as its own process (`bench bare-server --port N`) so its memory per
//! connection can be read from /proc like the stage's.

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Outbox = mpsc::UnboundedSender<Message>;

/// Channel name → its members' outboxes.
#[derive(Default)]
struct Channels(Mutex<HashMap<String, Vec<(u64, Outbox)>>>);

impl Channels {
    fn join(&self, channel: &str, id: u64, outbox: Outbox) {
        let mut channels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(channel.to_owned())
            .or_default()
            .push((id, outbox));
    }

    fn leave(&self, channel: &str, id: u64) {
        let mut channels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = channels.get_mut(channel) {
            members.retain(|(member, _)| *member != id);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
    }

    /// Queues `frame` for every member of `channel`; how many there were.
    fn broadcast(&self, channel: &str, frame: Utf8Bytes) -> usize {
        let channels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(members) = channels.get(channel) else {
            return 0;
        };
        for (_, outbox) in members {
            let _ = outbox.send(Message::Text(frame.clone()));
        }
        members.len()
    }
}

#[derive(Deserialize)]
struct Command {
    #[serde(default)]
    event: String,
    #[serde(default)]
    channel: String,
}

pub async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let channels = Arc::new(Channels::default());
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let (id, channels) = (next_id, channels.clone());
        tokio::spawn(async move {
            let _ = handle(stream, id, channels).await;
        });
    }
}

async fn handle(stream: TcpStream, id: u64, channels: Arc<Channels>) -> anyhow::Result<()> {
    let mut head = [0u8; 4];
    loop {
        match stream.peek(&mut head).await? {
            0 => return Ok(()),
            n if n >= head.len() => break,
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    if &head == b"POST" {
        http(stream, &channels).await
    } else {
        websocket(stream, id, &channels).await
    }
}

/// `POST /publish` requests on one keep-alive connection.
async fn http(mut stream: TcpStream, channels: &Channels) -> anyhow::Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let length = content_length(&String::from_utf8_lossy(&buffer[..head_end]));
        while buffer.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
        let (status, reply) = match serde_json::from_slice::<Command>(&body) {
            Ok(command) if !command.channel.is_empty() => {
                let text = String::from_utf8(body).unwrap_or_default();
                let sent = channels.broadcast(&command.channel, Utf8Bytes::from(text));
                ("202 Accepted", format!("{{\"delivered\":{sent}}}"))
            }
            _ => ("400 Bad Request", "{}".to_owned()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

async fn websocket(stream: TcpStream, id: u64, channels: &Channels) -> anyhow::Result<()> {
    let socket = tokio_tungstenite::accept_async(stream).await?;
    let (mut sink, mut source) = socket.split();
    let (outbox, mut queued) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let _ = outbox.send(Message::text(format!(
        r#"{{"event":"hotsock.connected","data":{{"connectionId":"bare-{id}","connectionSecret":"-"}}}}"#
    )));
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(text) => {
                let Ok(command) = serde_json::from_str::<Command>(&text) else {
                    continue;
                };
                if command.event == "hotsock.subscribe" && !joined.contains(&command.channel) {
                    channels.join(&command.channel, id, outbox.clone());
                    let reply = serde_json::json!({
                        "event": "hotsock.subscribed", "channel": command.channel, "data": {}
                    });
                    let _ = outbox.send(Message::text(reply.to_string()));
                    joined.push(command.channel);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    for channel in &joined {
        channels.leave(channel, id);
    }
    drop(outbox);
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_read_from_any_header_case() {
        assert_eq!(
            content_length("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n"),
            42
        );
        assert_eq!(
            content_length("POST / HTTP/1.1\r\ncontent-length:7\r\n\r\n"),
            7
        );
        assert_eq!(content_length("POST / HTTP/1.1\r\n\r\n"), 0);
    }
}
