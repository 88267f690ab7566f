//! WebSocket frames on the wire: the header of a server frame (written by hand, because a
//! shared frame's header is built once per event and copied to every socket), and client
//! frames decoded with actix-http's codec, fragmented messages reassembled, every limit
//! enforced.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{Bytes, BytesMut};

/// WebSocket opcodes of the frames the server writes.
#[derive(Debug, Clone, Copy)]
pub enum Opcode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// The header of a final, unmasked server frame of `len` payload bytes: up to 10 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    pub fn new(opcode: Opcode, len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode as u8;
        let used = if len < 126 {
            bytes[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        Header { bytes, len: used }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Appends a whole frame (header and payload) to `out`.
pub fn put_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.extend_from_slice(Header::new(opcode, payload.len()).as_bytes());
    out.extend_from_slice(payload);
}

/// The payload of a close frame: the code, then the reason (cut to fit a control frame).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

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

/// Decodes client messages from the bytes read off the socket. Holds no buffer while idle.
pub struct FrameReader {
    buf: BytesMut,
    codec: Codec,
    max: usize,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl FrameReader {
    pub fn new(max: usize) -> Self {
        FrameReader {
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max),
            max,
            partial: None,
        }
    }

    /// Bytes held: those fed but not yet decoded, and a fragmented message so far. Public for
    /// the fuzz targets (fuzz/), which check it stays within the frame limit.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.partial.as_ref().map_or(0, |(_, b)| b.len())
    }

    /// Takes bytes read off the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message in what was fed; `None` until more bytes come. Once the
    /// bytes are used up the buffer is let go, so an idle connection holds none.
    pub fn next_message(&mut self) -> Option<Result<Incoming, ReadError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if let Some(message) = self.on_frame(frame) {
                        return Some(message);
                    }
                }
                // actix-http's parser checks the limit only once the whole frame is in, so a
                // client declaring a huge frame would be buffered for as long as it sends:
                // refuse it as soon as its (otherwise valid) header is in.
                Ok(None) if declared_len(&self.buf).is_some_and(|len| len > self.max as u64) => {
                    return Some(Err(ReadError::TooLarge));
                }
                Ok(None) => {
                    if self.buf.is_empty() && self.buf.capacity() > 0 {
                        self.buf = BytesMut::new();
                    }
                    return None;
                }
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

/// The payload length the frame at the start of `buf` declares, once its header has come.
fn declared_len(buf: &[u8]) -> Option<u64> {
    let len = buf.get(1)? & 0x7F;
    match len {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => Some(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)),
        short => Some(u64::from(short)),
    }
}

fn text(bytes: Vec<u8>) -> Result<Incoming, ReadError> {
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| ReadError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(Header::new(Opcode::Text, 5).as_bytes(), &[0x81, 5]);
        assert_eq!(
            Header::new(Opcode::Text, 126).as_bytes(),
            &[0x81, 126, 0, 126]
        );
        assert_eq!(
            Header::new(Opcode::Ping, 70_000).as_bytes(),
            &[0x89, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let payload = close_payload(1013, &long);
        assert!(payload.len() <= 125);
        assert_eq!(&payload[..2], &1013u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn a_message_fed_in_pieces_comes_out_once_and_the_buffer_is_let_go() {
        // A masked client text frame "hi" (mask 1,2,3,4).
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let mut reader = FrameReader::new(1024);
        reader.feed(&frame[..3]);
        assert!(reader.next_message().is_none());
        reader.feed(&frame[3..]);
        assert!(matches!(reader.next_message(), Some(Ok(Incoming::Text(t))) if t == "hi"));
        assert!(reader.next_message().is_none());
        assert_eq!(reader.buf.capacity(), 0);
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_header() {
        // Found by fuzz/ws_frames: a text frame declaring 1 TiB, its header and 4 KiB of
        // payload sent; actix-http's parser alone would buffer it all and wait for the rest.
        let mut reader = FrameReader::new(1024);
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        reader.feed(&frame);
        reader.feed(&[0; 4096]);
        assert_eq!(
            reader.next_message().map(|m| m.err()),
            Some(Some(ReadError::TooLarge))
        );
        // A 16-bit length over the limit, the header alone.
        let mut reader = FrameReader::new(100);
        reader.feed(&[0x82, 0x80 | 126, 0, 200]);
        assert_eq!(
            reader.next_message().map(|m| m.err()),
            Some(Some(ReadError::TooLarge))
        );
        // Within the limit it waits for the payload.
        let mut reader = FrameReader::new(200);
        reader.feed(&[0x82, 0x80 | 126, 0, 200, 1, 2, 3, 4]);
        assert!(reader.next_message().is_none());
    }
}
