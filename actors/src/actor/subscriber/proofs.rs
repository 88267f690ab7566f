//! Proofs of the account's identifiers ([`crate::model::identity`]): whether a contact match
//! on one of them counts (the uploader's side asks, [`Vouch`]), and the codes that prove a
//! profile email or an email link ([`IssueCode`], [`ConfirmCode`]; the courier that sends
//! them is called from `crate::ops::proofs`, outside the turn).

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::links::link_edge;
use super::{AccountChange, Subscriber};
use crate::actor::{Durable, Turn, ready};
use crate::error::{Error, Result};
use crate::model::{
    AccountRecord, Claim, CodeTarget, IdKind, LinkRecord, PendingCode, Proof, now_ms,
};

/// Does this account hold any of `claims` as an identifier that counts? (Asked for a contact
/// match whose weight depends on the holder's proofs.)
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<bool>")]
pub struct Vouch {
    pub claims: Vec<Claim>,
}

/// Stores `code` as the one pending for `target`, once checked: the identifier exists, this
/// server can prove its kind, it is not proven yet, and the last code to it went out at least
/// `resend_after` ago. Answers where to send the code, or how long to wait.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Issued>")]
pub struct IssueCode {
    pub target: CodeTarget,
    pub code: PendingCode,
}

/// Outcome of [`IssueCode`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Issued {
    /// Stored: send the code to `to`, an identifier of `kind`.
    Send { kind: IdKind, to: String },
    /// A code went out too recently: ask again in `secs` seconds.
    Wait { secs: u64 },
}

/// The code whose hash is `hash` could not be sent: forget it if it is still the pending one,
/// so that another may be asked for at once.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct WithdrawCode {
    pub target: CodeTarget,
    pub hash: String,
}

/// Confirms `target` with `code`. A wrong code spends one attempt (stored, so that a restart
/// does not hand them back).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Confirmed>")]
pub struct ConfirmCode {
    pub target: CodeTarget,
    pub code: String,
}

/// Outcome of [`ConfirmCode`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Confirmed {
    /// Proven (now, or before: confirming again answers this too).
    Verified,
    /// Not the code; this many attempts are left.
    Wrong { attempts_left: u32 },
}

/// A proof as it will be once durable: the record that holds it.
enum Proven {
    Record(AccountRecord),
    Link(LinkRecord),
}

impl Proven {
    fn apply(self, act: &mut Subscriber) {
        match self {
            Proven::Record(record) => act.record = record,
            Proven::Link(link) => {
                act.links.insert(link.link_id.clone(), link);
            }
        }
    }
}

fn not_verifiable(message: impl Into<String>) -> Error {
    Error::conflict("not_verifiable", message)
}

fn code_expired() -> Error {
    Error::conflict(
        "code_expired",
        "no live code: it expired, its attempts are spent, or none was sent; ask for a new one",
    )
}

impl Subscriber {
    /// The identifier `target` names, checked provable here: its kind, where a code goes,
    /// and its proof now.
    fn code_target(&self, target: &CodeTarget) -> Result<(IdKind, String, Proof)> {
        let provable = self.provable();
        let unprovable = |kind: IdKind| {
            not_verifiable(match kind {
                IdKind::Email => {
                    "this server has no SMTP relay to send a code: emails count as registered"
                }
                IdKind::Phone => {
                    "this server has no SMS gateway to send a code: phones count as registered"
                }
            })
        };
        match target {
            CodeTarget::Profile(kind) => {
                let Some(claim) = self.record.identifier(*kind) else {
                    return Err(not_verifiable(format!(
                        "the profile has no {}",
                        kind.field()
                    )));
                };
                if !provable.can(*kind) {
                    return Err(unprovable(*kind));
                }
                let to = self.record.profile.get(kind.field()).cloned();
                Ok((
                    *kind,
                    to.unwrap_or_default(),
                    self.record.proof(&claim).clone(),
                ))
            }
            CodeTarget::Link(link_id) => {
                let link = self.links.get(link_id).ok_or(Error::NotFound("link"))?;
                let Some(kind) = link.code_kind() else {
                    return Err(not_verifiable(
                        "only email links are proven by a code (a Mastodon link is verified \
                         when it is made; a webhook handle is the user's own label)",
                    ));
                };
                if !provable.can(kind) {
                    return Err(unprovable(kind));
                }
                Ok((kind, link.handle.trim().to_owned(), link.proof.clone()))
            }
        }
    }

    /// The write that sets `target`'s proof to `proof`, and what it changes once durable.
    fn prove(&self, target: &CodeTarget, proof: Proof) -> Result<(AccountChange, Proven)> {
        let mut write = self.write();
        let proven = match target {
            CodeTarget::Profile(kind) => {
                let claim = self.record.identifier(*kind).ok_or_else(|| {
                    not_verifiable(format!("the profile has no {}", kind.field()))
                })?;
                let mut record = self.record.clone();
                if proof.is_unproven() {
                    record.proofs.remove(&claim.0);
                } else {
                    record.proofs.insert(claim.0, proof);
                }
                write.record = Some(record.clone());
                Proven::Record(record)
            }
            CodeTarget::Link(link_id) => {
                let mut link = self
                    .links
                    .get(link_id)
                    .cloned()
                    .ok_or(Error::NotFound("link"))?;
                link.proof = proof;
                write.edges.push(link_edge(&link)?);
                Proven::Link(link)
            }
        };
        Ok((write, proven))
    }

    /// Persists `proof` for `target`, then answers `out`.
    fn persist_proof<R: 'static>(
        &mut self,
        target: &CodeTarget,
        proof: Proof,
        out: R,
    ) -> Turn<Self, R> {
        match self.prove(target, proof) {
            Ok((write, proven)) => self.persist(write, move |act| {
                proven.apply(act);
                out
            }),
            Err(e) => ready(Err(e)),
        }
    }
}

impl Handler<Vouch> for Subscriber {
    type Result = Result<bool>;
    fn handle(&mut self, msg: Vouch, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let provable = self.provable();
        Ok(msg.claims.iter().any(|claim| {
            self.record.counts(claim, provable)
                || self
                    .links
                    .values()
                    .any(|l| l.claim() == *claim && l.counts(provable))
        }))
    }
}

impl Handler<IssueCode> for Subscriber {
    type Result = Turn<Self, Issued>;
    fn handle(&mut self, msg: IssueCode, _: &mut Self::Context) -> Self::Result {
        let (kind, to, proof) = match self.code_target(&msg.target) {
            Ok(found) => found,
            Err(e) => return ready(Err(e)),
        };
        // The code to store: a fresh one, or, after an earlier one, counted in its window.
        let code = match proof {
            Proof::Verified => {
                return ready(Err(Error::conflict(
                    "already_verified",
                    "this identifier is verified already",
                )));
            }
            Proof::Pending(last) => {
                let rules = &self.life.env.config.verification;
                let pause = rules.resend_after;
                let paced = last
                    .sent_ms
                    .saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
                let now = now_ms();
                let counted = msg.code.counted_after(&last, now);
                // Paced, and at most so many a day: each code brings its attempts, so the
                // day's budget bounds the guesses, whatever the pace.
                let next = match last.day_full_until(rules.codes_per_day) {
                    Some(day_end) if counted.day_codes > 1 => paced.max(day_end),
                    _ => paced,
                };
                if now < next {
                    self.touch();
                    return ready(Ok(Issued::Wait {
                        secs: (next - now).div_ceil(1000),
                    }));
                }
                counted
            }
            Proof::Unproven => msg.code,
        };
        self.persist_proof(&msg.target, Proof::Pending(code), Issued::Send { kind, to })
    }
}

impl Handler<WithdrawCode> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: WithdrawCode, _: &mut Self::Context) -> Self::Result {
        match self.code_target(&msg.target) {
            Ok((_, _, Proof::Pending(code))) if code.hash == msg.hash => {
                self.persist_proof(&msg.target, Proof::Unproven, ())
            }
            _ => {
                self.touch();
                ready(Ok(()))
            }
        }
    }
}

impl Handler<ConfirmCode> for Subscriber {
    type Result = Turn<Self, Confirmed>;
    fn handle(&mut self, msg: ConfirmCode, _: &mut Self::Context) -> Self::Result {
        let proof = match self.code_target(&msg.target) {
            Ok((_, _, proof)) => proof,
            Err(e) => return ready(Err(e)),
        };
        let mut pending = match proof {
            Proof::Verified => {
                self.touch();
                return ready(Ok(Confirmed::Verified));
            }
            Proof::Pending(code) if code.live(now_ms()) => code,
            Proof::Pending(_) | Proof::Unproven => return ready(Err(code_expired())),
        };
        if pending.matches(&msg.code) {
            return self.persist_proof(&msg.target, Proof::Verified, Confirmed::Verified);
        }
        pending.attempts_left -= 1;
        let attempts_left = pending.attempts_left;
        self.persist_proof(
            &msg.target,
            Proof::Pending(pending),
            Confirmed::Wrong { attempts_left },
        )
    }
}
