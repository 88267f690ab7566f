//! Fault injection for tests: named points in the code where a test can make the process die
//! as under `kill -9`, or a request handler panic. Every point is off unless the environment
//! variable `CHORUS_FAULTS` names it when the process starts (a comma-separated list), so a
//! production server never takes these branches; the black-box tests switch them on to prove
//! what happens after a crash between two steps, or after a panic.
//!
//! The points are listed in [`Point`], one constant each, so a test and the code agree on the
//! name, and `docs/architecture.md` lists what each one proves.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The variable that arms fault points.
pub const ENV: &str = "CHORUS_FAULTS";

/// A named fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point(pub &'static str);

impl Point {
    /// After the first step of a cross-actor operation is durable (its outbox entry with it),
    /// before any remaining step runs.
    pub const AFTER_FIRST_STEP: Point = Point("after_first_step");
    /// Between two steps of an outbox entry that has more than one recipient (after the first
    /// store call of a fan-out to friends, or the first bound group of a dynamic).
    pub const MID_STEP: Point = Point("mid_step");
    /// The first run of every cross-actor step fails as if the store had refused its writes,
    /// leaving the whole step to the sweeper (to prove a 2xx still means it happens).
    pub const STEP_FAILS: Point = Point("step_fails");
    /// A request handler panics (to prove a panic becomes a 500 and the server stays whole):
    /// the HTTP handler of `GET /v1/me` (`src/http/accounts.rs`), before it asks anything.
    pub const HANDLER_PANIC: Point = Point("handler_panic");
    /// An actor's handler panics (to prove the actor's task alone dies, the request gets a
    /// 500, and the next message activates the actor afresh on a thread that still runs): the
    /// account actor's `GetMe` handler (`actor/subscriber/profile.rs`), which `GET /v1/me`
    /// and `GET /v1/me/platforms` ask.
    pub const ACTOR_PANIC: Point = Point("actor_panic");
    /// The embedded store's writer fails each commit as a full or failing disk would (an I/O
    /// error, nothing written), and its recovery probe fails too, while a file named after
    /// the point exists in the data directory: a test creates it to make the disk "fail" and
    /// removes it to "free" it (for machines where a small filesystem cannot be mounted).
    pub const STORE_WRITE_ERROR: Point = Point("store_write_error");
    /// Every actor write waits [`SLOW_WRITE_DELAY`] after its turn has begun (past the
    /// directory's owner check) and before it reaches the store, so a test can pause the
    /// process (SIGSTOP) with writes in flight: to prove that a node paused past its lease
    /// has its stale writes refused by the store's epoch fence (cluster mode).
    pub const SLOW_WRITE: Point = Point("slow_write");
}

/// How long [`Point::SLOW_WRITE`] holds a write.
pub const SLOW_WRITE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

fn armed_set() -> &'static HashSet<String> {
    static ARMED: OnceLock<HashSet<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Whether `point` is armed in this process.
pub fn armed(point: Point) -> bool {
    let set = armed_set();
    !set.is_empty() && set.contains(point.0)
}

/// Dies at once, as `kill -9` would (no destructor runs, nothing is flushed), if `point` is
/// armed.
pub fn crash_at(point: Point) {
    if armed(point) {
        tracing::error!(point = point.0, "fault injected: the process dies here");
        std::process::abort();
    }
}

/// Panics if `point` is armed.
pub fn panic_at(point: Point) {
    if armed(point) {
        panic!("fault injected at {}", point.0);
    }
}

/// Names of the armed points, for the start-up log (so a server never runs armed unnoticed).
pub fn armed_points() -> Vec<String> {
    let mut names: Vec<String> = armed_set().iter().cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_armed_by_default() {
        // The test environment does not set the variable.
        if std::env::var(ENV).is_err() {
            assert!(!armed(Point::AFTER_FIRST_STEP));
            crash_at(Point::AFTER_FIRST_STEP);
            panic_at(Point::HANDLER_PANIC);
        }
    }
}
