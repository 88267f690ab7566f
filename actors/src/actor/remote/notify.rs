//! A fan-out's appends on the owners of its recipients: in a cluster an account's log is
//! written only by the node that owns the account, so [`crate::actor::logs::notify_each`]
//! hands each other node the recipients it owns, in calls of at most [`MAX_ACCOUNTS`]
//! accounts and about [`MAX_BODY`] bytes (NATS carries at most 1 MiB). The owner appends
//! under its own log heads, rechecking there when the notice says so, so two runs of one
//! step on two nodes queue on one head and never both append.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Reply, decode, encode, reply};
use crate::actor::env::Env;
use crate::actor::logs::{Notice, notify_here};
use crate::actor::place::{ActorKind, Owner, Route};
use crate::error::{Error, Result};
use crate::model::AccountId;
use crate::push::event::EventType;

/// The route's name (kind `Account`, no id: the accounts are in the body).
pub const NAME: &str = "notify";

/// Most accounts in one call.
const MAX_ACCOUNTS: usize = 1024;

/// About the largest body of one call: the accounts are cut to fit beside the event's data.
const MAX_BODY: usize = 512 * 1024;

/// A call's body.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    accounts: Vec<AccountId>,
    event: String,
    data: String,
    recheck: bool,
    created_ms: u64,
}

/// What became of the accounts sent to one node.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// Not appended (the step keeps them for its next run).
    pub failed: Vec<AccountId>,
    /// Owned by another node now: not appended there, to be sent on.
    pub moved: Vec<AccountId>,
}

/// Has `node` append the notice to the logs of `accounts` (which it owns, as this node sees
/// it), in calls that fit; a call that gets no answer fails all its accounts.
pub async fn forward(
    env: &Env,
    node: String,
    accounts: Vec<AccountId>,
    notice: Notice<'_>,
) -> Moved {
    let mut out = Moved::default();
    for chunk in chunks(accounts, notice.data.len()) {
        match call(env, &node, &chunk, notice).await {
            Ok(answer) => {
                out.failed.extend(answer.failed);
                out.moved.extend(answer.moved);
            }
            Err(e) => {
                tracing::warn!(%node, accounts = chunk.len(), kind = notice.kind.0, error = %e,
                    "events not appended: the recipients' owner did not answer");
                out.failed.extend(chunk);
            }
        }
    }
    out
}

/// `accounts` cut into calls of at most [`MAX_ACCOUNTS`] and, beside `data` bytes of
/// event data, about [`MAX_BODY`] bytes.
fn chunks(accounts: Vec<AccountId>, data: usize) -> Vec<Vec<AccountId>> {
    let budget = MAX_BODY.saturating_sub(data);
    let mut out: Vec<Vec<AccountId>> = Vec::new();
    let mut size = 0;
    for account in accounts {
        // Quotes and a comma around each id.
        let cost = account.len() + 3;
        match out.last_mut() {
            Some(chunk) if chunk.len() < MAX_ACCOUNTS && size + cost <= budget => {
                size += cost;
                chunk.push(account);
            }
            _ => {
                size = cost;
                out.push(vec![account]);
            }
        }
    }
    out
}

async fn call(env: &Env, node: &str, accounts: &[AccountId], notice: Notice<'_>) -> Result<Moved> {
    let body = encode(&Body {
        accounts: accounts.to_vec(),
        event: notice.kind.0.to_owned(),
        data: notice.data.to_owned(),
        recheck: notice.recheck,
        created_ms: notice.created_ms,
    })?;
    let route = Route {
        kind: ActorKind::Account,
        id: String::new(),
        name: NAME.to_owned(),
    };
    match decode::<Moved>(&env.placement.forward(node, route, body).await?)? {
        Reply::Ok(moved) => Ok(moved),
        Reply::Err(e) => Err(Error::from_wire(e)),
        Reply::NotOwner => Ok(Moved {
            failed: Vec::new(),
            moved: accounts.to_vec(),
        }),
    }
}

/// The owner's side: appends to the logs of the accounts it owns; answers those that failed
/// and those it does not own (any more).
pub(super) async fn serve(env: &Env, body: Bytes) -> Bytes {
    let body: Body = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            let e = Error::Internal(format!("a notify from another node did not decode: {e}"));
            return reply::<Moved>(Err(e));
        }
    };
    let Some(kind) = EventType::named(&body.event) else {
        return reply::<Moved>(Err(Error::Internal(format!(
            "a notify from another node names no known event: {}",
            body.event
        ))));
    };
    let (here, moved): (Vec<AccountId>, Vec<AccountId>) = body
        .accounts
        .into_iter()
        .partition(|a| env.placement.owner(ActorKind::Account, a) == Owner::Local);
    let notice = Notice {
        kind,
        data: &body.data,
        recheck: body.recheck,
        created_ms: body.created_ms,
    };
    let failed = notify_here(env, &here, notice).await;
    reply(Ok(Moved { failed, moved }))
}
