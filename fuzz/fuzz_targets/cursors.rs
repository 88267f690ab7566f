//! Cursor parsing: a query string as `?limit=N&before=CURSOR` reaches every list, read by
//! actix's `web::Query` into `chorus::http::ListQuery` exactly as the handlers do, then
//! checked by `ListQuery::page` (`PageRequest::parse`, `FeedPos::parse`).
//!
//! Never a panic; a page taken has a limit from 1 to `MAX_PAGE`; a cursor taken reads back
//! the same from its own text (`FeedPos::cursor`), and a page's cursor id fits an engine key
//! (fjall refuses keys over `u16::MAX` bytes with an assertion). The raw text is also read as a
//! cursor directly, so inputs that are not query strings still reach `FeedPos::parse`.
#![no_main]

use actix_web::web;
use chorus::http::ListQuery;
use chorus_actors::model::limits::MAX_PAGE;
use chorus_actors::model::{FeedPos, PageRequest};
use libfuzzer_sys::fuzz_target;

/// Bytes a store adds around a cursor's id in a key (prefix, owner id, time): generous.
const KEY_OVERHEAD: usize = 256;

fn check_cursor(pos: &FeedPos) {
    assert_eq!(
        FeedPos::parse(&pos.cursor()).ok().as_ref(),
        Some(pos),
        "a cursor does not read back"
    );
}

/// A page as a handler gets it: its cursor becomes part of a store key (fjall's `feed_page`
/// range bound), so its id must fit one. A request head may be 128 KiB (actix-http).
fn check_page(page: &PageRequest) {
    assert!((1..=MAX_PAGE).contains(&page.limit), "limit {}", page.limit);
    if let Some(pos) = &page.before {
        check_cursor(pos);
        assert!(
            pos.id.len() + KEY_OVERHEAD <= usize::from(u16::MAX),
            "a cursor id of {} bytes was taken",
            pos.id.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pos) = FeedPos::parse(text) {
        check_cursor(&pos);
    }
    if let Ok(query) = web::Query::<ListQuery>::from_query(text)
        && let Ok(page) = query.page()
    {
        check_page(&page);
    }
    // The same text as the two values directly (no URL decoding).
    let (limit, before) = text.split_once('&').unwrap_or((text, ""));
    for (l, b) in [
        (Some(limit), Some(before)),
        (None, Some(text)),
        (Some(text), None),
    ] {
        if let Ok(page) = PageRequest::parse(l, b) {
            check_page(&page);
        }
    }
});
