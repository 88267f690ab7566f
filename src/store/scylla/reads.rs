//! Reads: single rows, paged listings, event logs across their seq partitions and feeds
//! across their day partitions.

use std::ops::ControlFlow;

use bytestring::ByteString;
use chorus_actors::StoreError;
use chorus_actors::model::FeedPos;
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::TokenOwner;
use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::deserialize::row::DeserializeRow;
use scylla::response::PagingState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::keys::{
    FeedKind, LogKind, bound_ms, event_bucket, feed_bucket, fits, from_bigint, limit_value,
    split_hash, to_bigint,
};
use super::{ScyllaStore, backend, corrupt};
use crate::store::json::decode;

/// How many log heads [`ScyllaStore::last_seqs_of`] reads at once.
const HEAD_READS: usize = 64;

impl ScyllaStore {
    /// At most one row.
    pub(super) async fn get_one<R>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self
            .session
            .execute_unpaged(ps, values)
            .await
            .map_err(|e| backend(what, e))?
            .into_rows_result()
            .map_err(|e| backend(what, e))?;
        rows.maybe_first_row::<R>().map_err(|e| corrupt(what, e))
    }

    /// Every row, page by page, stopping once `max` rows are in.
    pub(super) async fn all_rows<R>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        max: usize,
        what: &str,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let mut out = Vec::new();
        let mut state = PagingState::start();
        loop {
            let (result, paging) = self
                .session
                .execute_single_page(ps, &values, state)
                .await
                .map_err(|e| backend(what, e))?;
            let rows = result.into_rows_result().map_err(|e| backend(what, e))?;
            for row in rows.rows::<R>().map_err(|e| backend(what, e))? {
                out.push(row.map_err(|e| corrupt(what, e))?);
                if out.len() >= max {
                    return Ok(out);
                }
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(next) => state = next,
            }
        }
    }

    /// Every JSON record a query returns (one blob column), decoded.
    pub(super) async fn records<T: DeserializeOwned>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self.all_rows(ps, values, usize::MAX, what).await?;
        rows.iter().map(|(bytes,)| decode(what, bytes)).collect()
    }

    pub(super) async fn record<T: DeserializeOwned>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_one::<(Vec<u8>,)>(ps, values, what).await? {
            Some((bytes,)) => Ok(Some(decode(what, &bytes)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn ids(
        &self,
        ps: &PreparedStatement,
        owner: &str,
        what: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self.all_rows(ps, (owner,), usize::MAX, what).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn last_seq(&self, kind: LogKind, id: &str) -> Result<u64, StoreError> {
        let key = kind.key(id);
        fits("logs", &key)?;
        // A row without a head is an actor's epoch alone (claimed, nothing written yet).
        match self
            .get_one::<(Option<i64>,)>(&self.st.get_last_seq, (key.as_str(),), "reading logs")
            .await?
        {
            Some((Some(seq),)) => from_bigint(seq, &format!("logs/{key}")),
            Some((None,)) | None => Ok(0),
        }
    }

    /// The heads of many accounts' (or groups') logs, in order, a bounded number of reads
    /// at a time.
    pub(super) async fn last_seqs_of(
        &self,
        kind: LogKind,
        ids: &[String],
    ) -> Result<Vec<u64>, StoreError> {
        stream::iter(ids.iter().cloned())
            .map(|id| async move { self.last_seq(kind, &id).await })
            .buffered(HEAD_READS)
            .try_collect()
            .await
    }

    /// Events with `seq > after`, oldest first: the log's partitions from the one holding
    /// `after + 1` up to the one holding its last seq (seqs have no gaps, so none is empty).
    pub(super) async fn read_log(
        &self,
        kind: LogKind,
        ps: &PreparedStatement,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = self.last_seq(kind, id).await?;
        if after >= last {
            return Ok(Vec::new());
        }
        // after < last <= i64::MAX.
        let after_value = to_bigint(after, "seq")?;
        let mut out = Vec::new();
        let mut bucket = event_bucket(after + 1);
        while bucket <= event_bucket(last) && out.len() < limit {
            let remaining = limit - out.len();
            let rows: Vec<(i64, String)> = self
                .all_rows(
                    ps,
                    (id, bucket, after_value, limit_value(remaining)),
                    remaining,
                    "reading events",
                )
                .await?;
            for (seq, frame) in rows {
                out.push(StoredEvent {
                    seq: from_bigint(seq, &format!("{id}/{seq}"))?,
                    frame: ByteString::from(frame),
                });
            }
            bucket += 1;
        }
        Ok(out)
    }

    /// Newest-first page of a feed: items created at or after `since_ms` and strictly before
    /// `before`. Walks the feed's non-empty days newest first (from the cursor's day), reading
    /// each day partition until `limit` items are in.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn feed_page<T: DeserializeOwned>(
        &self,
        kind: FeedKind,
        page: &PreparedStatement,
        page_before: &PreparedStatement,
        owner: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let feed = kind.key(owner);
        fits("feeds", &feed)?;
        if let Some(pos) = before {
            fits("feeds", &pos.id)?;
        }
        let top = before.map_or(i64::MAX, |pos| feed_bucket(pos.ms));
        let low = feed_bucket(since_ms);
        let since = bound_ms(since_ms);
        let mut out = Vec::new();
        if limit == 0 || top < low {
            return Ok(out);
        }
        let mut state = PagingState::start();
        loop {
            let (result, paging) = self
                .session
                .execute_single_page(&self.st.list_feed_buckets, (&feed, top, low), state)
                .await
                .map_err(|e| backend("reading feed days", e))?;
            let buckets: Vec<i64> = {
                let rows = result
                    .into_rows_result()
                    .map_err(|e| backend("reading feed days", e))?;
                rows.rows::<(i64,)>()
                    .map_err(|e| backend("reading feed days", e))?
                    .map(|row| row.map(|(b,)| b))
                    .collect::<Result<_, _>>()
                    .map_err(|e| corrupt("feed_buckets", e))?
            };
            for bucket in buckets {
                let remaining = limit - out.len();
                let rows: Vec<(i64, Vec<u8>)> = match before {
                    Some(pos) if feed_bucket(pos.ms) == bucket => {
                        let values = (
                            &feed,
                            bucket,
                            bound_ms(pos.ms),
                            pos.id.as_str(),
                            limit_value(remaining),
                        );
                        self.all_rows(page_before, values, remaining, "reading a feed")
                            .await?
                    }
                    _ => {
                        let values = (&feed, bucket, limit_value(remaining));
                        self.all_rows(page, values, remaining, "reading a feed")
                            .await?
                    }
                };
                for (ms, bytes) in rows {
                    if ms < since {
                        return Ok(out);
                    }
                    out.push(decode(&format!("{feed}/{ms}"), &bytes)?);
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(next) => state = next,
            }
        }
    }

    /// The account a token's hash names and when it was issued; the verifier half is
    /// compared in constant time.
    pub(super) async fn find_token_row(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<TokenOwner>, StoreError> {
        let (selector, verifier) = split_hash(hash);
        let row: Option<(Vec<u8>, i64, String)> = self
            .get_one(&self.st.get_token, (selector,), "reading sessions")
            .await?;
        let Some((stored, issued, account)) = row else {
            return Ok(None);
        };
        if !bool::from(stored.ct_eq(&verifier)) {
            return Ok(None);
        }
        Ok(Some(TokenOwner {
            issued_ms: from_bigint(issued, "sessions/issued_ms")?,
            account,
        }))
    }

    /// Looks up a selector/verifier hash index (server keys); the verifier half is
    /// compared in constant time.
    pub(super) async fn find_hash(
        &self,
        ps: &PreparedStatement,
        hash: &[u8; 32],
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        let (selector, verifier) = split_hash(hash);
        let row: Option<(Vec<u8>, String)> = self.get_one(ps, (selector,), what).await?;
        Ok(row.and_then(|(stored, owner)| bool::from(stored.ct_eq(&verifier)).then_some(owner)))
    }
}
