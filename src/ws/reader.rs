//! Incoming WebSocket frames of one connection, decoded with actix-http's codec, fragmented
//! messages reassembled, every limit enforced.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

/// A complete client message.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// A frame or reassembled message over the limit (close 1009).
    TooLarge,
    /// A text message that is not UTF-8 (close 1007).
    InvalidUtf8,
    /// Anything else the protocol forbids (close 1002).
    Protocol(String),
}

/// Reads client messages from the request payload.
pub struct FrameReader {
    payload: Payload,
    buf: BytesMut,
    codec: Codec,
    max: usize,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl FrameReader {
    pub fn new(payload: Payload, max: usize) -> Self {
        FrameReader {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max),
            max,
            partial: None,
        }
    }

    /// The next complete message; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if let Some(message) = self.on_frame(frame) {
                        return Some(message);
                    }
                }
                Ok(None) => match self.payload.next().await {
                    Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                    Some(Err(_)) | None => return None,
                },
                Err(ProtocolError::Overflow) => return Some(Err(ReadError::TooLarge)),
                Err(e) => return Some(Err(ReadError::Protocol(e.to_string()))),
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Option<Result<Incoming, ReadError>> {
        Some(match frame {
            Frame::Text(bytes) => text(bytes.to_vec()),
            Frame::Binary(_) => Ok(Incoming::Binary),
            Frame::Ping(bytes) => Ok(Incoming::Ping(bytes)),
            Frame::Pong(_) => Ok(Incoming::Pong),
            Frame::Close(_) => Ok(Incoming::Close),
            Frame::Continuation(item) => return self.on_fragment(item),
        })
    }

    fn on_fragment(&mut self, item: Item) -> Option<Result<Incoming, ReadError>> {
        let (first, bytes, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (first, self.partial.as_mut()) {
            (Some(is_text), None) => self.partial = Some((is_text, BytesMut::from(&bytes[..]))),
            (None, Some((_, so_far))) => so_far.extend_from_slice(&bytes),
            _ => return Some(Err(ReadError::Protocol("continuation out of order".into()))),
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|(_, b)| b.len() > self.max)
        {
            return Some(Err(ReadError::TooLarge));
        }
        if !last {
            return None;
        }
        let (is_text, bytes) = self.partial.take()?;
        Some(if is_text {
            text(bytes.to_vec())
        } else {
            Ok(Incoming::Binary)
        })
    }
}

fn text(bytes: Vec<u8>) -> Result<Incoming, ReadError> {
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| ReadError::InvalidUtf8)
}
