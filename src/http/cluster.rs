//! `GET /v1/cluster`: this node's view of its cluster and its NATS traffic, and
//! `GET /v1/cluster/owner/{kind}/{id}`: which node owns an actor, for operators, the
//! black-box tests and the load harness. Internal: not part of the wire contract
//! (docs/api.md says so). 404 `not_found` on a node that is not in cluster mode.

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::check_id;
use chorus_actors::place::{ActorKind, Owner};
use serde_json::json;

use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// The node's id, incarnation and phase, the live nodes, the view's version, the epochs it
/// holds and its NATS client's counters ([`crate::cluster::Status`]).
pub async fn status(cluster: Option<web::Data<Cluster>>) -> Result<HttpResponse> {
    let cluster = cluster.ok_or(Error::Domain(chorus_actors::Error::NotFound("route")))?;
    Ok(HttpResponse::Ok().json(cluster.status()))
}

/// The node that owns the account (`a`), group (`g`) or community (`c`) `id` as this node
/// sees the cluster now: `{"kind", "id", "node"}`. 404 for an unknown kind or an id that is
/// not an id; the actor need not exist (ownership is by hash).
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
    Ok(HttpResponse::Ok().json(json!({"kind": kind.token(), "id": id, "node": node})))
}
