//! Proving identifiers (`crate::model::identity`): a code sent to a profile email or an email
//! link, and its confirmation. The account's actor stores the code (hashed) and checks it;
//! the courier (`crate::actor::courier`) sends it, here, outside the actor's turn.

use super::Chorus;
use crate::actor::subscriber::{ConfirmCode, Confirmed, IssueCode, Issued, WithdrawCode};
use crate::error::{Error, Result};
use crate::model::{CodeTarget, PendingCode, now_ms};

/// Outcome of [`Chorus::send_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSent {
    /// On its way to `to`; good for `expires_in_secs`.
    Sent { to: String, expires_in_secs: u64 },
    /// A code went out to it too recently: ask again in this many seconds.
    Wait(u64),
}

impl Chorus {
    /// Sends a new code to `me`'s identifier `target`; the code it sent before (if any) is
    /// void. 409 `not_verifiable` where there is nothing to prove with a code (no such field,
    /// a platform that is not email, a server without a courier for the kind), 409
    /// `already_verified`; a code that cannot be sent is forgotten again and answers 503.
    pub async fn send_code(&self, me: &str, target: CodeTarget) -> Result<CodeSent> {
        let rules = &self.directory.env().config.verification;
        let ttl_ms = u64::try_from(rules.code_ttl.as_millis()).unwrap_or(u64::MAX);
        let (code, pending) = PendingCode::issue(now_ms(), ttl_ms, rules.code_attempts);
        let hash = pending.hash.clone();
        let issued = self
            .directory
            .ask(
                me,
                IssueCode {
                    target: target.clone(),
                    code: pending,
                },
            )
            .await?;
        let (kind, to) = match issued {
            Issued::Wait { secs } => return Ok(CodeSent::Wait(secs)),
            Issued::Send { kind, to } => (kind, to),
        };
        let sent = match &rules.courier {
            Some(courier) => courier.send(kind, &to, &code).await,
            None => Err("no courier".to_owned()),
        };
        if let Err(reason) = sent {
            tracing::warn!(account = %me, ?kind, %reason, "verification code not sent");
            // So that the client may ask again at once rather than after the resend pause.
            if let Err(e) = self.directory.ask(me, WithdrawCode { target, hash }).await {
                tracing::warn!(account = %me, error = %e, "unsent code not withdrawn");
            }
            return Err(Error::Unavailable(
                "the code could not be sent; try again shortly".into(),
            ));
        }
        Ok(CodeSent::Sent {
            to,
            expires_in_secs: rules.code_ttl.as_secs(),
        })
    }

    /// Confirms `me`'s identifier `target` with `code`. 400 `invalid_code` for a wrong code
    /// (one attempt spent), 409 `code_expired` when no live code is pending; confirming an
    /// identifier proven already succeeds.
    pub async fn confirm_code(&self, me: &str, target: CodeTarget, code: String) -> Result<()> {
        match self.directory.ask(me, ConfirmCode { target, code }).await? {
            Confirmed::Verified => Ok(()),
            Confirmed::Wrong { attempts_left } => Err(Error::Invalid {
                code: "invalid_code",
                message: format!("wrong code; {attempts_left} attempt(s) left"),
            }),
        }
    }
}
