//! What an operation decided must happen, as values. Operations return
//! [`Effects`]; one driver ([`crate::runtime::driver`]) performs them. Nothing here does
//! I/O, so what an operation decided can be asserted in a unit test.

use crate::pubsub::PubSubEvent;
use sockhop_core::protocol::ServerMessage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// One frame (JSON text) to each of these connections.
    Send { to: Vec<String>, frame: String },
    /// Frames to many connections, each connection's in list order, the
    /// connections independently: one connection's next frame goes as soon
    /// as it has the previous one, never waiting for another connection's
    /// (a lane's run of messages).
    Pipeline { sends: Vec<(Vec<String>, String)> },
    /// The greeting: the socket may not be open yet when it is sent, so a Gone
    /// answer is retried for a few seconds before the connection is given up.
    Greet { to: String, frame: String },
    /// Close the socket from the server side, then clean the connection up.
    Close { connection_id: String },
    /// Remove the connection and everything it contributed.
    Cleanup { connection_id: String },
    /// The member list a presence channel's members were just told (JSON
    /// text; `None` when nobody is left), kept until `ttl`. Written after the
    /// frames before it went out: a crash in between tells the change again
    /// rather than never.
    RememberMembers {
        channel: String,
        members: Option<String>,
        ttl: i64,
    },
    /// A backend event, published after the frames (never before or instead).
    Emit(Box<PubSubEvent>),
}

/// An ordered list of effects: frames to one connection arrive in list order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects(Vec<Effect>);

impl Effects {
    pub fn new() -> Self {
        Effects::default()
    }

    /// `frame` to one connection.
    pub fn send(&mut self, connection_id: &str, frame: &ServerMessage) {
        self.0.push(Effect::Send {
            to: vec![connection_id.to_owned()],
            frame: frame.to_json(),
        });
    }

    /// One frame to many connections (nothing when there are none).
    pub fn send_to(&mut self, to: Vec<String>, frame: &ServerMessage) {
        // Serialized only for somebody: callers split recipients by kind.
        if !to.is_empty() {
            self.send_text(to, frame.to_json());
        }
    }

    /// One frame already serialized (a message spliced from stored JSON).
    pub fn send_text(&mut self, to: Vec<String>, frame: String) {
        if !to.is_empty() {
            self.0.push(Effect::Send { to, frame });
        }
    }

    /// Frames in order for each connection, connections not waiting for
    /// each other ([`Effect::Pipeline`]).
    pub fn pipeline(&mut self, sends: Vec<(Vec<String>, String)>) {
        let sends: Vec<_> = sends.into_iter().filter(|(to, _)| !to.is_empty()).collect();
        if !sends.is_empty() {
            self.0.push(Effect::Pipeline { sends });
        }
    }

    pub fn greet(&mut self, connection_id: &str, frame: &ServerMessage) {
        self.0.push(Effect::Greet {
            to: connection_id.to_owned(),
            frame: frame.to_json(),
        });
    }

    pub fn close(&mut self, connection_id: &str) {
        self.0.push(Effect::Close {
            connection_id: connection_id.to_owned(),
        });
    }

    pub fn cleanup(&mut self, connection_id: &str) {
        self.0.push(Effect::Cleanup {
            connection_id: connection_id.to_owned(),
        });
    }

    pub fn remember_members(&mut self, channel: &str, members: Option<String>, ttl: i64) {
        self.0.push(Effect::RememberMembers {
            channel: channel.to_owned(),
            members,
            ttl,
        });
    }

    pub fn emit(&mut self, event: PubSubEvent) {
        self.0.push(Effect::Emit(Box::new(event)));
    }

    /// The backend events among the effects (for tests and logs).
    pub fn events(&self) -> Vec<&PubSubEvent> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Effect::Emit(event) => Some(event.as_ref()),
                _ => None,
            })
            .collect()
    }

    pub fn append(&mut self, mut other: Effects) {
        self.0.append(&mut other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Effect> {
        self.0.iter()
    }

    /// The frames one connection would receive, in order (for tests and logs).
    pub fn frames_to(&self, connection_id: &str) -> Vec<&str> {
        self.0
            .iter()
            .flat_map(|e| match e {
                Effect::Send { to, frame } if to.iter().any(|t| t == connection_id) => {
                    vec![frame.as_str()]
                }
                Effect::Pipeline { sends } => sends
                    .iter()
                    .filter(|(to, _)| to.iter().any(|t| t == connection_id))
                    .map(|(_, frame)| frame.as_str())
                    .collect(),
                Effect::Greet { to, frame } if to == connection_id => vec![frame.as_str()],
                _ => Vec::new(),
            })
            .collect()
    }
}

impl IntoIterator for Effects {
    type Item = Effect;
    type IntoIter = std::vec::IntoIter<Effect>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_their_order_per_connection() {
        let mut effects = Effects::new();
        effects.greet("a", &ServerMessage::pong());
        effects.send_to(
            vec!["a".to_owned(), "b".to_owned()],
            &ServerMessage::keep_alive(),
        );
        effects.send_to(vec![], &ServerMessage::keep_alive());
        effects.cleanup("c");
        let to_a = effects.frames_to("a");
        assert_eq!(to_a.len(), 2);
        assert!(to_a[0].contains("hotsock.pong"));
        assert!(to_a[1].contains("hotsock.keepAlive"));
        assert_eq!(effects.frames_to("b").len(), 1);
        // No recipients, no effect.
        assert_eq!(effects.iter().count(), 3);
    }
}
