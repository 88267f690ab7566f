//! Where an attempt gets its link's secret: a release keeps the link without it
//! ([`crate::model::LinkRecord::public`]), so each attempt asks the author's actor for the
//! link as it stands now, sealed secret included ([`GetLink`]), and hands that to the
//! connector, which unseals it. The secret is stored once, with the link, and an unlinked
//! link has none left to find: its attempt fails as "platform unlinked", as the releaser's
//! own cancellation records it.

use crate::actor::directory::WeakDirectory;
use crate::actor::subscriber::GetLink;
use crate::error::Error;

use super::connector::{AttemptOutcome, Outgoing};

/// `last_error` of a release whose link is gone.
pub(super) const UNLINKED: &str = "platform unlinked";

/// `out` with its link as the author's actor holds it now; the outcome to record instead if
/// there is none to attempt with.
pub(super) async fn with_secret(
    directory: &WeakDirectory,
    author: &str,
    mut out: Outgoing,
) -> Result<Outgoing, AttemptOutcome> {
    let Some(directory) = directory.upgrade() else {
        return Err(AttemptOutcome::Retry {
            error: "the server is stopping".into(),
            after: None,
        });
    };
    let ask = GetLink {
        link_id: out.link.link_id.clone(),
    };
    match directory.ask(author, ask).await {
        Ok(link) => {
            out.link = link;
            Ok(out)
        }
        Err(Error::NotFound(_)) => Err(AttemptOutcome::Fail {
            error: UNLINKED.into(),
        }),
        Err(e) => {
            tracing::warn!(author, link = %out.link.link_id, error = %e, "reading a link for its release failed");
            Err(AttemptOutcome::Retry {
                error: "the link could not be read; retrying".into(),
                after: None,
            })
        }
    }
}
