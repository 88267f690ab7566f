//! The verification seam: how a code reaches an identifier, and which kinds of identifier
//! this server can prove at all ([`crate::model::identity`] says what a proof changes).
//!
//! The server implements [`Courier`] over its SMTP relay for emails (`src/connectors/`,
//! `--smtp-url`). **An SMS gateway plugs in here**: a courier whose [`Courier::carries`]
//! answers true for [`IdKind::Phone`] and whose [`Courier::send`] texts the code. Nothing
//! else changes: the profile's phone then awaits its code (`POST /v1/me/phone/code` and
//! `/verify` take the same path as email's) and counts for a mutual match only once
//! proven, exactly as an email does on a server with SMTP.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{IdKind, Provable};

/// Sends verification codes. Implemented by the server crate; the domain only asks it.
#[async_trait]
pub trait Courier: Debug + Send + Sync + 'static {
    /// Can this server send a code to identifiers of `kind`? Those it cannot are taken as
    /// registered (they count without proof), since nothing could prove them.
    fn carries(&self, kind: IdKind) -> bool;

    /// Sends `code` to `to` (an address or number of `kind`). An error says why, for the
    /// log; the client is told to try again.
    async fn send(&self, kind: IdKind, to: &str, code: &str) -> Result<(), String>;
}

/// How identifiers are proven: the courier (none: nothing can be proven, everything is
/// taken as registered) and the rules of its codes.
#[derive(Debug, Clone)]
pub struct Verification {
    pub courier: Option<Arc<dyn Courier>>,
    /// How long a code is good for.
    pub code_ttl: Duration,
    /// Wrong codes accepted before a code is spent.
    pub code_attempts: u32,
    /// The least time between two codes sent to one identifier.
    pub resend_after: Duration,
    /// Codes sent to one identifier in 24 h at most: with `code_attempts`, the guesses a
    /// day at a six-digit code.
    pub codes_per_day: u32,
}

impl Default for Verification {
    fn default() -> Self {
        Verification {
            courier: None,
            code_ttl: Duration::from_secs(600),
            code_attempts: 5,
            resend_after: Duration::from_secs(60),
            codes_per_day: 10,
        }
    }
}

impl Verification {
    /// What the start-up line says of identities.
    pub fn describe(&self) -> String {
        let provable = self.provable();
        let say = |kind: &str, can: bool, why: &str| {
            if can {
                format!("{kind} verified by code")
            } else {
                format!("{kind} taken as registered ({why})")
            }
        };
        format!(
            "{}, {}",
            say(
                "emails",
                provable.email,
                "no SMTP relay: nothing could verify them"
            ),
            say("phones", provable.phone, "no SMS gateway")
        )
    }

    /// Which kinds this server can prove.
    pub fn provable(&self) -> Provable {
        let carries = |kind| self.courier.as_ref().is_some_and(|c| c.carries(kind));
        Provable {
            email: carries(IdKind::Email),
            phone: carries(IdKind::Phone),
        }
    }
}
