//! `GET /v1/cluster`: this node's view of its cluster and its NATS traffic, and
//! `GET /v1/cluster/owner/{kind}/{id}`: which node owns an actor, for operators, the
//! black-box tests and the load harness. Internal: not part of the wire contract
//! (docs/api.md says so). 404 `not_found` on a node that is not in cluster mode.

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::check_id;
use chorus_actors::place::{ActorKind, Owner};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cluster::Cluster;
use crate::error::{Error, ErrorBody, Result};

/// `GET /v1/cluster/owner/{kind}/{id}`: the node that owns the actor now.
#[derive(Serialize, ToSchema)]
pub struct OwnerAnswer {
    kind: &'static str,
    id: String,
    node: String,
}

/// The node's id, incarnation and phase, the live nodes, the view's version, the epochs it
/// holds and its NATS client's counters ([`crate::cluster::Status`]).
#[utoipa::path(get, path = "/v1/cluster", tag = "internal", operation_id = "cluster_status",
    security(()),
    responses(
        (status = 200, description = "This node's view of its cluster (docs/api.md).", body = Object),
        (status = 404, description = "`not_found`: not in cluster mode.", body = ErrorBody),
    ))]
pub async fn status(cluster: Option<web::Data<Cluster>>) -> Result<HttpResponse> {
    let cluster = cluster.ok_or(Error::Domain(chorus_actors::Error::NotFound("route")))?;
    Ok(HttpResponse::Ok().json(cluster.status()))
}

/// The node that owns the account (`a`), group (`g`) or community (`c`) `id` as this node
/// sees the cluster now: `{"kind", "id", "node"}`. 404 for an unknown kind or an id that is
/// not an id; the actor need not exist (ownership is by hash).
#[utoipa::path(get, path = "/v1/cluster/owner/{kind}/{id}", tag = "internal", operation_id = "cluster_owner",
    security(()),
    params(("kind" = String, Path, description = "`a` (account), `g` (group) or `c` (community)."),
        ("id" = String, Path, description = "The actor's id.")),
    responses((status = 200, description = "The owning node.", body = OwnerAnswer)))]
pub async fn owner(
    cluster: Option<web::Data<Cluster>>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let not_found = || Error::Domain(chorus_actors::Error::NotFound("route"));
    let cluster = cluster.ok_or_else(not_found)?;
    let (kind, id) = path.into_inner();
    let kind = ActorKind::from_token(&kind).ok_or_else(not_found)?;
    check_id("actor", &id)?;
    let node = match cluster.placement().owner(kind, &id) {
        Owner::Local => cluster.node_id().to_owned(),
        Owner::Remote(node) => node,
    };
    Ok(HttpResponse::Ok().json(OwnerAnswer {
        kind: kind.token(),
        id,
        node,
    }))
}
