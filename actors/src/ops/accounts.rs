//! Accounts: creation, logins and tokens, profiles (a change reaches every friend), platform
//! links, and the devices of the WebSocket session.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Chorus;
use super::retention::{after_horizon, checked_read};
use crate::actor::subscriber::{
    AddToken, GetAccount, GetMe, HeadSeq, LinkPlatform, RevokeToken, UnlinkPlatform, UpdateProfile,
};
use crate::error::Result;
use crate::model::limits::MAX_EVENTS_PAGE;
use crate::model::{
    AccountId, AccountRecord, AccountView, LinkRecord, MeView, login_claim, now_ms,
};
use crate::push::event::{Outlet, StoredEvent};
use crate::store::{SubscriberWrite, TokenSelector};

/// Longest login that is looked up as an account id.
const MAX_ID_LOGIN: usize = 64;

impl Chorus {
    /// Stores a new account (profile checked by [`crate::model::limits::normalize_profile`])
    /// with its login claims and first token, atomically; `email_taken`/`phone_taken` if a
    /// login is held by another account.
    pub async fn create_account(&self, record: AccountRecord, token_hash: [u8; 32]) -> Result<()> {
        let mut write = SubscriberWrite::new(&record.account_id);
        write.claims = record.login_claims();
        write.grant_token(token_hash, now_ms());
        write.record = Some(record);
        Ok(self.store().commit(write).await?)
    }

    /// The account a login names: an email or a phone (`+...`) it holds, or its id. `None` if
    /// there is none (the caller still spends the time of a password check).
    pub async fn find_login(&self, login: &str) -> Result<Option<AccountRecord>> {
        let account_id = match login_claim(login) {
            Some(claim) => self.store().find_claim(&claim).await?,
            None => Some(login.to_owned()),
        };
        match account_id {
            Some(id) if id.len() <= MAX_ID_LOGIN => Ok(self.store().load_account(&id).await?),
            _ => Ok(None),
        }
    }

    /// The account a bearer token (by its SHA-256) belongs to, while the token lives: one
    /// issued longer ago than the token TTL answers `None` (401), wherever it is looked up.
    pub async fn account_of_token(&self, token_hash: &[u8; 32]) -> Result<Option<AccountId>> {
        let caps = &self.directory.env().config.caps;
        Ok(self
            .store()
            .find_token(token_hash)
            .await?
            .filter(|t| caps.token_alive(t.issued_ms, now_ms()))
            .map(|t| t.account))
    }

    /// Ends the token `token_hash` of `account` (logout): it no longer authenticates,
    /// anywhere in the cluster, once this answers.
    pub async fn revoke_token(&self, account: &str, token_hash: &[u8; 32]) -> Result<()> {
        let selector = TokenSelector::of(token_hash).0;
        self.directory.ask(account, RevokeToken { selector }).await
    }

    /// Stores another token of `account` (a login).
    pub async fn add_token(&self, account: &str, token_hash: [u8; 32]) -> Result<()> {
        self.directory
            .ask(account, AddToken { hash: token_hash })
            .await
    }

    /// The account's own view, links included.
    pub async fn me(&self, account: &str) -> Result<MeView> {
        self.directory.ask(account, GetMe).await
    }

    /// Account `id` as `viewer` sees it (email and phone only for itself and friends).
    pub async fn account(&self, viewer: &str, id: &str) -> Result<AccountView> {
        self.directory
            .ask(
                id,
                GetAccount {
                    viewer: Some(viewer.to_owned()),
                },
            )
            .await
    }

    /// Applies a profile patch (checked by [`crate::model::limits::normalize_patch`]) and,
    /// once it is durable (with the step that tells the friends), appends `profile.updated`
    /// to every friend's log and pushes it to their devices. Answers the new profile version
    /// after the friends' copies are durable too (normally), and in any case once they are
    /// sure to follow: an acknowledged change reaches offline devices, after a crash too.
    pub async fn update_profile(
        &self,
        me: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<u64> {
        let (version, step) = self.directory.ask(me, UpdateProfile { changes }).await?;
        self.carry(step).await;
        Ok(version)
    }

    /// Links a platform account (its config checked by the platform's connector).
    pub async fn link_platform(&self, me: &str, link: LinkRecord) -> Result<()> {
        self.directory.ask(me, LinkPlatform { link }).await
    }

    /// Removes a link; releases to it that are waiting end `failed`.
    pub async fn unlink_platform(&self, me: &str, link_id: String) -> Result<()> {
        self.directory.ask(me, UnlinkPlatform { link_id }).await
    }

    /// A device of `account` connected to this node: events are pushed to `outlet` from now
    /// on. Answers the newest `seq` of the account's log; every later event reaches the
    /// device, every earlier one is at or below it (the session drops those).
    ///
    /// In that order, wherever the account's actor lives: this node takes the account's
    /// events from the other nodes ([`crate::push::Relay::interest`], in effect when it
    /// answers), the device joins this node's hub, and only then the account's owner reads
    /// its log head (under the head, as every append numbers events).
    pub async fn attach(&self, account: &str, outlet: Arc<dyn Outlet>) -> Result<u64> {
        let env = self.directory.env();
        env.relay.interest(account).await?;
        let outlet_id = outlet.id();
        let (before, after) = env.hub.attach(account, outlet);
        env.relay.presence(account, after);
        env.presence.local_changed(account, before, after);
        match self.directory.ask(account, HeadSeq).await {
            Ok(seq) => Ok(seq),
            Err(e) => {
                self.detach(account, outlet_id).await?;
                Err(e)
            }
        }
    }

    /// The device `outlet_id` of `account` disconnected from this node.
    pub async fn detach(&self, account: &str, outlet_id: u64) -> Result<()> {
        let env = self.directory.env();
        let (before, after) = env.hub.detach(account, outlet_id);
        env.relay.release(account);
        if before != after {
            env.relay.presence(account, after);
            env.presence.local_changed(account, before, after);
        }
        Ok(())
    }

    /// Up to [`MAX_EVENTS_PAGE`] events of the account's log with `seq > after`, oldest first
    /// (a page of `resume`; a full page means more may follow). Read from the store where
    /// the device is: everything acknowledged is there, so no actor is asked.
    pub async fn read_events(&self, account: &str, after: u64) -> Result<Vec<StoredEvent>> {
        Ok(self
            .store()
            .read_events(account, after, MAX_EVENTS_PAGE)
            .await?)
    }

    /// The first page of a `resume` from `since`: like [`Chorus::read_events`], or
    /// `resync_required` when events after `since` were trimmed (`super::retention`).
    pub async fn resume_events(&self, account: &str, since: u64) -> Result<Vec<StoredEvent>> {
        let (after, limit) = checked_read(since, MAX_EVENTS_PAGE);
        let page = self.store().read_events(account, after, limit).await?;
        // The head matters only when nothing came back (every event after `since` gone?).
        let head = match page.is_empty() {
            true => self
                .store()
                .last_seqs(&[account.to_owned()])
                .await?
                .first()
                .copied()
                .unwrap_or(0),
            false => 0,
        };
        after_horizon(since, page, MAX_EVENTS_PAGE, head)
    }
}
