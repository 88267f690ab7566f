//! `resume`: the client frame read, its groups checked, and the replay walked, one page at a
//! time: the account's log after `since` first, then each listed group's log after the
//! device's cursor for it, in the order of the frame's keys. Live frames wait in the shard
//! meanwhile ([`super::shard::Conn::begin_replay`]) and follow once the last page is out,
//! each event once.
//!
//! `{"type":"resume","since":N,"groups":{"GID":M,...}}` (`groups` may be absent, `null`
//! or empty: the account's log alone, as before contract revision 2). Refusals are error
//! frames and the connection stays; nothing is replayed then:
//! - `bad_frame`: `since` or a cursor `M` is not a non-negative integer, `groups` is not an
//!   object;
//! - `invalid_input`: more than [`MAX_CURSOR_GROUPS`] groups;
//! - `forbidden` (with the frame's `group_id`): a group that is not one of the account's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chorus_actors::Chorus;
use chorus_actors::model::limits::MAX_CURSOR_GROUPS;
use chorus_actors::push::StoredEvent;
use chorus_actors::{GroupStart, ResumeGroups};
use serde_json::{Map, Value};

/// A page read of a running replay.
pub type PageRead = Pin<Box<dyn Future<Output = chorus_actors::Result<Vec<StoredEvent>>>>>;

/// The check of a resume's groups.
type GroupsCheck = Pin<Box<dyn Future<Output = chorus_actors::Result<ResumeGroups>>>>;

/// A `resume` as the client sent it, its shape checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub since: u64,
    pub groups: Vec<(String, u64)>,
}

/// Why a `resume` is refused: the error frame's code and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Reads a `resume` frame.
pub fn parse(frame: &Map<String, Value>) -> Result<Request, Refusal> {
    let Some(since) = frame.get("since").and_then(Value::as_u64) else {
        return Err(refusal(
            "bad_frame",
            "resume needs \"since\": a non-negative integer",
        ));
    };
    let groups = match frame.get("groups") {
        None | Some(Value::Null) => {
            return Ok(Request {
                since,
                groups: Vec::new(),
            });
        }
        Some(Value::Object(groups)) => groups,
        Some(_) => {
            return Err(refusal(
                "bad_frame",
                "resume \"groups\" is an object: {\"GROUP_ID\": group_seq, ...}",
            ));
        }
    };
    if groups.len() > MAX_CURSOR_GROUPS {
        return Err(refusal(
            "invalid_input",
            format!(
                "resume names at most {MAX_CURSOR_GROUPS} groups; read the others with GET /v1/groups/{{gid}}/events"
            ),
        ));
    }
    let groups = groups
        .iter()
        .map(|(gid, at)| match at.as_u64() {
            Some(at) => Ok((gid.clone(), at)),
            None => Err(refusal(
                "bad_frame",
                format!("resume \"groups\".{gid:?} needs a non-negative integer group_seq"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(Request { since, groups })
}

/// Which log a replay reads now.
enum Log {
    Account,
    Group { id: Arc<str>, head: u64 },
}

/// Where a replay is.
pub struct Replay {
    log: Log,
    after: u64,
    /// The first page of `log` is still to be read (it checks the retention horizon).
    first: bool,
    read: Option<PageRead>,
    /// The groups to replay after this log, in order.
    rest: VecDeque<GroupStart>,
}

/// What a resume is doing.
pub enum Resuming {
    /// Checking that every group named is the account's; the replay starts after.
    Checking {
        since: u64,
        check: GroupsCheck,
    },
    Replaying(Replay),
}

/// What came of a resume's step.
pub enum Progress {
    /// The check of the groups answered.
    Checked(u64, chorus_actors::Result<ResumeGroups>),
    /// A page of the replay came.
    Page(chorus_actors::Result<Vec<StoredEvent>>),
}

/// Where a page took the replay.
pub enum Next {
    /// More of this log, or the next log: read on.
    More,
    /// Every log is replayed: go live.
    Done,
}

impl Resuming {
    /// A resume: the account's log alone starts at once; groups are checked first.
    pub fn start(request: Request, chorus: &Chorus, account: &str) -> Self {
        if request.groups.is_empty() {
            return Resuming::Replaying(Replay::new(request.since, Vec::new()));
        }
        let (chorus, account) = (chorus.clone(), account.to_owned());
        let groups = request.groups;
        Resuming::Checking {
            since: request.since,
            check: Box::pin(async move { chorus.resume_groups(&account, groups).await }),
        }
    }

    /// Starts the read of the next page, when one is due and none is under way.
    pub fn read_next(&mut self, chorus: &Chorus, account: &Arc<str>) {
        if let Resuming::Replaying(replay) = self
            && replay.read.is_none()
        {
            replay.read = Some(replay.page(chorus.clone(), account.clone()));
        }
    }

    /// Whether the next page is due (none under way).
    pub fn wants_page(&self) -> bool {
        matches!(self, Resuming::Replaying(r) if r.read.is_none())
    }
}

impl Replay {
    pub fn new(since: u64, groups: Vec<GroupStart>) -> Self {
        Replay {
            log: Log::Account,
            after: since,
            first: true,
            read: None,
            rest: groups.into(),
        }
    }

    /// The group whose log is being replayed, if it is one.
    pub fn group(&self) -> Option<(&str, u64)> {
        match &self.log {
            Log::Account => None,
            Log::Group { id, head } => Some((id, *head)),
        }
    }

    /// The read of the next page.
    fn page(&mut self, chorus: Chorus, account: Arc<str>) -> PageRead {
        let (after, first) = (self.after, self.first);
        self.first = false;
        match &self.log {
            Log::Account => Box::pin(async move {
                if first {
                    chorus.resume_events(&account, after).await
                } else {
                    chorus.read_events(&account, after).await
                }
            }),
            Log::Group { id, head } => {
                let (id, head) = (id.clone(), *head);
                Box::pin(async move {
                    if first {
                        chorus.resume_group_events(&id, after, head).await
                    } else {
                        chorus.read_group_log(&id, after).await
                    }
                })
            }
        }
    }

    /// A page of the current log was written, the last one at `after`: read on in this
    /// log after a full page, else go to the next log.
    pub fn paged(&mut self, after: u64, full: bool) -> Next {
        self.read = None;
        if full {
            self.after = after;
            return Next::More;
        }
        self.next_log()
    }

    /// Leaves the current log (done, or from before its horizon) for the next one.
    pub fn next_log(&mut self) -> Next {
        self.read = None;
        match self.rest.pop_front() {
            Some(start) => {
                self.log = Log::Group {
                    id: Arc::from(start.group_id),
                    head: start.head,
                };
                self.after = start.after;
                self.first = true;
                Next::More
            }
            None => Next::Done,
        }
    }
}

/// The step under way of a resume, or never.
pub async fn poll(resuming: &mut Option<Resuming>) -> Progress {
    match resuming {
        Some(Resuming::Checking { since, check }) => Progress::Checked(*since, check.await),
        Some(Resuming::Replaying(Replay {
            read: Some(read), ..
        })) => Progress::Page(read.await),
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(frame: Value) -> Result<Request, Refusal> {
        match frame {
            Value::Object(frame) => parse(&frame),
            _ => panic!("an object"),
        }
    }

    #[test]
    fn resume_reads_since_and_groups() {
        assert_eq!(
            parsed(json!({"type": "resume", "since": 3})),
            Ok(Request {
                since: 3,
                groups: vec![]
            })
        );
        assert_eq!(
            parsed(json!({"type": "resume", "since": 3, "groups": null})),
            Ok(Request {
                since: 3,
                groups: vec![]
            })
        );
        assert_eq!(
            parsed(json!({"type": "resume", "since": 0, "groups": {"b": 2, "a": 0}})),
            Ok(Request {
                since: 0,
                groups: vec![("a".into(), 0), ("b".into(), 2)]
            })
        );
    }

    #[test]
    fn bad_resumes_are_refused_with_their_codes() {
        let code = |frame| parsed(frame).err().map(|r| r.code);
        assert_eq!(code(json!({"type": "resume"})), Some("bad_frame"));
        assert_eq!(
            code(json!({"type": "resume", "since": -1})),
            Some("bad_frame")
        );
        assert_eq!(
            code(json!({"type": "resume", "since": 1, "groups": [1]})),
            Some("bad_frame")
        );
        assert_eq!(
            code(json!({"type": "resume", "since": 1, "groups": "g"})),
            Some("bad_frame")
        );
        for bad in [json!(-1), json!(1.5), json!("3"), json!(null)] {
            assert_eq!(
                code(json!({"type": "resume", "since": 1, "groups": {"g": bad}})),
                Some("bad_frame")
            );
        }
        let many: Map<String, Value> = (0..=MAX_CURSOR_GROUPS)
            .map(|i| (format!("g{i}"), json!(0)))
            .collect();
        assert_eq!(
            code(json!({"type": "resume", "since": 1, "groups": many})),
            Some("invalid_input")
        );
    }

    #[test]
    fn a_replay_walks_the_account_log_then_each_group() {
        let start = |g: &str, after, head| GroupStart {
            group_id: g.into(),
            after,
            head,
        };
        let mut replay = Replay::new(5, vec![start("g1", 2, 9), start("g2", 0, 0)]);
        assert!(replay.group().is_none());
        assert!(matches!(replay.paged(1005, true), Next::More));
        assert_eq!((replay.after, replay.group()), (1005, None));
        assert!(matches!(replay.paged(1010, false), Next::More));
        assert_eq!((replay.after, replay.first), (2, true));
        assert_eq!(replay.group(), Some(("g1", 9)));
        assert!(matches!(replay.next_log(), Next::More));
        assert_eq!(replay.group(), Some(("g2", 0)));
        assert!(matches!(replay.paged(0, false), Next::Done));
    }
}
