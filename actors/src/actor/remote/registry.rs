//! The one list of routed messages: each gets its wire name ([`Routed::NAME`]) and its entry
//! in [`dispatch`], which runs it through the local ask of its kind of actor. Written once,
//! by a macro, so a message is routable by adding its name here (and serde to its type).
//! A message's type name and its fields are its wire form: renaming either means that nodes
//! of the two builds cannot serve each other's asks (a rolling upgrade must keep them).

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{Routed, serve_one};
use crate::actor::directory::Directory;
use crate::actor::place::{ActorKind, Route};
use crate::actor::{community, group, subscriber};

/// `routed! { Kind via local_ask: module { Message, … } … }`: `impl Routed` for each message
/// (its name is its type's name), and [`dispatch`] over all of them.
macro_rules! routed {
    ($($kind:ident via $here:ident: $module:ident { $($msg:ident),* $(,)? })*) => {
        $($(
            impl Routed for $module::$msg {
                const NAME: &'static str = stringify!($msg);
            }
        )*)*

        /// The run of a forwarded message, by its route; the route back if it names no
        /// routed message.
        pub(super) fn dispatch(
            directory: Directory,
            route: Route,
            body: Bytes,
        ) -> Result<BoxFuture<'static, Bytes>, Route> {
            match (route.kind, route.name.as_str()) {
                $($(
                    (ActorKind::$kind, stringify!($msg)) => Ok(Box::pin(serve_one(
                        directory,
                        route.id,
                        body,
                        |d: Directory, id: String, m: $module::$msg| async move {
                            d.$here(&id, m).await
                        },
                    ))),
                )*)*
                _ => Err(route),
            }
        }

        /// Every route [`dispatch`] knows (tests check the names are unique per kind).
        #[cfg(test)]
        pub(super) const ROUTES: &[(ActorKind, &str)] = &[$($((ActorKind::$kind, stringify!($msg)),)*)*];
    };
}

routed! {
    Account via ask_here: subscriber {
        AddToken, RevokeToken, GetMe, GetAccount, UpdateProfile,
        LinkPlatform, UnlinkPlatform, GetLink,
        HeadSeq,
        StartFriendRequest, ReceiveFriendRequest, AcceptFriend, DeclineFriend, BecomeFriends,
        Unfriend,
        DropFriend, RecordMatches, MatchedBy, ListRelation,
        PostActivity, RecordRelease, CanSeeActivities,
        Vouch, IssueCode, WithdrawCode, ConfirmCode,
    }
    Group via ask_group_here: group {
        GetGroup, MemberAccess, LogAccess, AddMember, RemoveMember, PostMessage,
        ReceiveBindingRequest, ListBindingRequests, ApproveBinding, RejectBinding,
        RevokeBinding, PushDynamic, MemberPresence,
    }
    Community via ask_community_here: community {
        GetCommunity, AddMember, PostDynamic, BindingAdded, BindingRemoved,
    }
}
