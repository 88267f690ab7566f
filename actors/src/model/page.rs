//! Pages of a list and the one cursor format every list shares.
//!
//! Every list (friends, requests, suggestions, chat, dynamics, activities) runs newest first
//! by `(time in ms, id)`. A page's `next` cursor is the position of its last item, written
//! `"{ms}.{id}"`; [`FeedPos::parse`] is the only reader of that format.

use serde::{Deserialize, Serialize};

use super::limits::{DEFAULT_PAGE, MAX_PAGE, check_cursor};
use crate::error::{Error, Result};

/// A position in a time-ordered list: `(ms, id)`, compared newest first. As a cursor it
/// reads `"{ms}.{id}"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeedPos {
    pub ms: u64,
    pub id: String,
}

impl FeedPos {
    /// Reads a cursor this server handed out as `next`.
    pub fn parse(cursor: &str) -> Result<Self> {
        cursor
            .split_once('.')
            .and_then(|(ms, id)| {
                Some(FeedPos {
                    ms: ms.parse().ok()?,
                    id: id.to_owned(),
                })
            })
            .ok_or_else(|| Error::invalid("before is not a cursor this list returned"))
    }

    /// The cursor text of this position.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.ms, self.id)
    }
}

/// Which page of a list a client asks for: `?limit=N&before=CURSOR`, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to [`MAX_PAGE`].
    pub limit: usize,
    /// Items strictly older than this; the newest if `None`.
    pub before: Option<FeedPos>,
}

impl PageRequest {
    /// From the query's text: `limit` (default [`DEFAULT_PAGE`]) must be a number from 1 to
    /// [`MAX_PAGE`], `before` a cursor of this list ([`check_cursor`]).
    pub fn parse(limit: Option<&str>, before: Option<&str>) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(Error::invalid(format!(
                        "limit must be a number from 1 to {MAX_PAGE}"
                    )));
                }
            },
        };
        let before = before
            .map(|cursor| check_cursor(cursor).and_then(|()| FeedPos::parse(cursor)))
            .transpose()?;
        Ok(PageRequest { limit, before })
    }
}

/// A page of a list, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// From a newest-first list read with one item more than `limit` (as the stores answer):
    /// keeps `limit` and points `next` at the last kept item when more remain.
    pub fn cut(mut items: Vec<T>, limit: usize, pos: impl Fn(&T) -> FeedPos) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| pos(last).cursor())
        } else {
            None
        };
        Page { items, next }
    }

    /// Turns each item into another, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

impl Page<String> {
    /// One page of ids held in memory with the time each relation began (an actor's friends,
    /// requests, suggestions): newest first, after `page.before`.
    pub fn of_positions(mut entries: Vec<FeedPos>, page: &PageRequest) -> Self {
        entries.sort_by(|a, b| b.cmp(a));
        let start = page
            .before
            .as_ref()
            .map_or(0, |before| entries.partition_point(|e| e >= before));
        let kept: Vec<FeedPos> = entries
            .iter()
            .skip(start)
            .take(page.limit)
            .cloned()
            .collect();
        let next = if start + kept.len() < entries.len() {
            kept.last().map(FeedPos::cursor)
        } else {
            None
        };
        Page {
            items: kept.into_iter().map(|p| p.id).collect(),
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: usize, before: Option<String>) -> PageRequest {
        PageRequest {
            limit,
            before: before
                .map(|c| FeedPos::parse(&c))
                .transpose()
                .unwrap_or(None),
        }
    }

    #[test]
    fn pages_newest_first_with_cursor() {
        let entries: Vec<FeedPos> = (1..=5)
            .map(|i| FeedPos {
                ms: i,
                id: format!("id{i}"),
            })
            .collect();
        let first = Page::of_positions(entries.clone(), &request(2, None));
        assert_eq!(first.items, vec!["id5", "id4"]);
        let second = Page::of_positions(entries.clone(), &request(2, first.next));
        assert_eq!(second.items, vec!["id3", "id2"]);
        let third = Page::of_positions(entries, &request(2, second.next));
        assert_eq!(third.items, vec!["id1"]);
        assert_eq!(third.next, None);
    }

    #[test]
    fn one_parser_for_every_cursor() {
        assert!(FeedPos::parse("garbage").is_err());
        assert!(FeedPos::parse("x.id").is_err());
        let pos = FeedPos {
            ms: 12,
            id: "a.b".into(),
        };
        assert_eq!(FeedPos::parse(&pos.cursor()).ok(), Some(pos));
        assert!(PageRequest::parse(Some("0"), None).is_err());
        assert!(PageRequest::parse(Some("201"), None).is_err());
        assert!(PageRequest::parse(None, Some("7")).is_err());
        assert_eq!(
            PageRequest::parse(None, None).map(|p| p.limit).ok(),
            Some(50)
        );
    }

    #[test]
    fn cut_keeps_limit_and_points_at_the_last() {
        let page = Page::cut(vec![5u64, 4, 3], 2, |n| FeedPos {
            ms: *n,
            id: n.to_string(),
        });
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next.as_deref(), Some("4.4"));
        assert_eq!(
            Page::cut(vec![1u64], 2, |_| FeedPos {
                ms: 0,
                id: String::new()
            })
            .next,
            None
        );
    }
}
