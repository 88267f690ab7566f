//! The response body of a WebSocket connection: it reads the device's mailbox itself and
//! encodes every frame waiting there into one buffer per poll. Live events thus go from the
//! fan-out worker's `try_send` straight to the socket write — one queue, one task wake-up,
//! and as many frames per `write` as have piled up.
//!
//! The HTTP dispatcher polls a body only while its write buffer has room, so a reader that
//! stops reading stops the polls, its mailbox fills, and the next `try_send` finds it full:
//! that is how a slow device is detected.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Encoder;
use actix_http::ws::{CloseReason, Codec, Message};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use chorus_actors::push::StoredEvent;
use futures_util::Stream;
use tokio::sync::mpsc;

use super::Outbound;

/// Most bytes encoded before handing a buffer to the socket.
const MAX_BATCH: usize = 64 * 1024;

/// What the connection's reader task asks the body to send.
#[derive(Debug)]
pub enum Control {
    /// A frame of its own (pong, error frame).
    Text(ByteString),
    Ping,
    Pong(Bytes),
    /// Stop taking live events: a replay from the store follows (`resume`).
    BeginReplay {
        since: u64,
    },
    /// One replayed event of the account's log.
    Replayed(StoredEvent),
    /// Replay done: live events flow again.
    EndReplay,
    /// Send a close frame and end.
    Close(CloseReason),
}

/// The body stream.
pub struct MailboxBody {
    control: mpsc::Receiver<Control>,
    mailbox: mpsc::Receiver<Outbound>,
    codec: Codec,
    buf: BytesMut,
    /// The highest account `seq` sent (or announced in hello): older account events are
    /// dropped, which makes replay-then-live free of duplicates.
    last_sent: u64,
    /// The highest account `seq` this connection knows of.
    latest: u64,
    /// False during a replay.
    live: bool,
    done: bool,
}

impl MailboxBody {
    /// A body that starts with `hello` (account log at `seq`).
    pub fn new(
        hello: &str,
        seq: u64,
        control: mpsc::Receiver<Control>,
        mailbox: mpsc::Receiver<Outbound>,
    ) -> Self {
        let mut body = MailboxBody {
            control,
            mailbox,
            codec: Codec::new(),
            buf: BytesMut::with_capacity(256),
            last_sent: seq,
            latest: seq,
            live: true,
            done: false,
        };
        body.encode(Message::Text(ByteString::from(hello)));
        body
    }

    fn encode(&mut self, message: Message) {
        if let Err(e) = self.codec.encode(message, &mut self.buf) {
            tracing::error!(error = %e, "frame failed to encode");
        }
    }

    fn account_event(&mut self, event: StoredEvent) {
        self.latest = self.latest.max(event.seq);
        if event.seq > self.last_sent {
            self.last_sent = event.seq;
            self.encode(Message::Text(event.frame));
        }
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Text(text) => self.encode(Message::Text(text)),
            Control::Ping => self.encode(Message::Ping(Bytes::new())),
            Control::Pong(bytes) => self.encode(Message::Pong(bytes)),
            Control::BeginReplay { since } => {
                self.live = false;
                self.last_sent = since.min(self.latest);
            }
            Control::Replayed(event) => self.account_event(event),
            Control::EndReplay => self.live = true,
            Control::Close(reason) => {
                self.encode(Message::Close(Some(reason)));
                self.done = true;
            }
        }
    }
}

impl Stream for MailboxBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.done && this.buf.len() < MAX_BATCH {
            match this.control.poll_recv(cx) {
                Poll::Ready(Some(control)) => this.on_control(control),
                // The reader task ended: the connection is over.
                Poll::Ready(None) => this.done = true,
                Poll::Pending => break,
            }
        }
        while this.live && !this.done && this.buf.len() < MAX_BATCH {
            match this.mailbox.poll_recv(cx) {
                Poll::Ready(Some(Outbound::Account(event))) => this.account_event(event),
                Poll::Ready(Some(Outbound::Shared(frame))) => this.encode(Message::Text(frame)),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if !this.buf.is_empty() {
            if this.buf.len() >= MAX_BATCH {
                // More may be waiting; come back right after this write.
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
        }
        if this.done {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}
