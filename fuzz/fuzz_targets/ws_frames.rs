//! The WebSocket frame reader (`chorus::ws::frames::FrameReader`), two ways:
//!
//! - **raw** (first byte even): the rest is a byte stream off the socket, fed in chunks whose
//!   sizes come from the input, with the frame limit from the input. The reader must never
//!   panic, hold more once drained than a fragmented message within the limit and one
//!   incomplete frame within it (`buffered() <= 2 * max + 14`, 14 the longest masked
//!   header), answer a text message over the limit, or answer differently when the same
//!   bytes come in other chunks (all at once, one by one).
//! - **built** (first byte odd): the input describes client messages (text or binary, some
//!   fragmented, with a mask); the target writes their frames as a client would and knows
//!   the answer of each: the message itself, `TooLarge` (close 1009) as soon as a message
//!   passes the limit, `InvalidUtf8` (close 1007) for a complete text message that is not
//!   UTF-8. The reader must answer exactly that.
//!
//! Seed layout (raw): `[0, max_hi, max_lo, chunk_seed, stream...]`; see fuzz/README.md.
#![no_main]

use chorus::ws::frames::{FrameReader, Incoming, ReadError};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

/// The longest header of a client frame: 2 + 8 (length) + 4 (mask).
const MAX_HEADER: usize = 14;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        raw(rest);
    } else {
        let _ = built(&mut Unstructured::new(rest));
    }
});

/// A reader's answers, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close,
    Err(ReadError),
}

/// Drains `reader` after a feed: every answer up to the first error (the session closes
/// there), checking the limits on the way. `true` once an error ended the stream.
fn drain(reader: &mut FrameReader, max: usize, seen: &mut Vec<Seen>) -> bool {
    while let Some(message) = reader.next_message() {
        let item = match message {
            Ok(Incoming::Text(t)) => {
                assert!(
                    t.len() <= max,
                    "a text message of {} > {max} bytes passed",
                    t.len()
                );
                Seen::Text(t)
            }
            Ok(Incoming::Binary) => Seen::Binary,
            Ok(Incoming::Ping(b)) => Seen::Ping(b.to_vec()),
            Ok(Incoming::Pong) => Seen::Pong,
            Ok(Incoming::Close) => Seen::Close,
            Err(e) => {
                seen.push(Seen::Err(e));
                return true;
            }
        };
        seen.push(item);
    }
    // Drained: at most one incomplete frame is held, and a fragmented message within the limit.
    assert!(
        reader.buffered() <= 2 * max + MAX_HEADER,
        "holds {} bytes with a limit of {max}",
        reader.buffered()
    );
    false
}

/// Feeds `stream` in chunks of the given sizes (cycled; 0 means the rest) and drains after each.
fn run(stream: &[u8], max: usize, sizes: &[usize]) -> Vec<Seen> {
    let mut reader = FrameReader::new(max);
    let mut seen = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let size = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0);
        let end = if size == 0 {
            stream.len()
        } else {
            (at + size).min(stream.len())
        };
        reader.feed(&stream[at..end]);
        at = end;
        i += 1;
        if drain(&mut reader, max, &mut seen) {
            return seen;
        }
    }
    seen
}

fn raw(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    // A limit from 1 byte to 64 KiB, so that small inputs reach it.
    let max = usize::from(u16::from_be_bytes([data[0], data[1]])).max(1);
    let seed = data[2];
    let stream = &data[3..];
    // Chunk sizes from the seed: 1 to 16 bytes, varying.
    let sizes: Vec<usize> = (0..8)
        .map(|i| usize::from(seed.rotate_left(i) % 16) + 1)
        .collect();
    let chunked = run(stream, max, &sizes);
    let whole = run(stream, max, &[0]);
    let bytewise = run(stream, max, &[1]);
    assert_eq!(chunked, whole, "answers depend on how the bytes came in");
    assert_eq!(bytewise, whole, "answers depend on how the bytes came in");
}

/// One client frame, masked as clients must.
fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

fn built(u: &mut Unstructured) -> ArbResult<()> {
    let max = usize::from(u.int_in_range(1u16..=512)?);
    let mask: [u8; 4] = u.arbitrary()?;
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let messages = u.int_in_range(1u8..=6)?;
    for _ in 0..messages {
        let is_text: bool = u.arbitrary()?;
        // Mostly UTF-8 text, sometimes any bytes; sometimes past the limit.
        let payload: Vec<u8> = if is_text && u.ratio(3, 4)? {
            let s: String = u.arbitrary()?;
            let times = usize::from(u.int_in_range(1u8..=4)?);
            s.repeat(times).into_bytes()
        } else {
            let b: Vec<u8> = u.arbitrary()?;
            let times = usize::from(u.int_in_range(1u8..=4)?);
            b.repeat(times)
        };
        let parts = usize::from(u.int_in_range(1u8..=4)?);
        let opcode = if is_text { 0x1 } else { 0x2 };
        // Split into `parts` fragments (the first carries the opcode, the rest continue).
        let step = payload.len().div_ceil(parts).max(1);
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(step).collect()
        };
        let mut so_far = 0;
        let mut too_large = false;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            frame(
                &mut stream,
                last,
                if i == 0 { opcode } else { 0 },
                chunk,
                mask,
            );
            so_far += chunk.len();
            if so_far > max {
                too_large = true;
                break;
            }
        }
        if too_large {
            expected.push(Seen::Err(ReadError::TooLarge));
            break;
        }
        match (is_text, String::from_utf8(payload)) {
            (true, Ok(text)) => expected.push(Seen::Text(text)),
            (true, Err(_)) => {
                expected.push(Seen::Err(ReadError::InvalidUtf8));
                break;
            }
            (false, _) => expected.push(Seen::Binary),
        }
    }
    let sizes: Vec<usize> = (0..4)
        .map(|_| u.int_in_range(0usize..=40))
        .collect::<ArbResult<_>>()?;
    assert_eq!(run(&stream, max, &sizes), expected, "max {max}");
    Ok(())
}
