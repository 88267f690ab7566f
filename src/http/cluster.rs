//! `GET /v1/cluster`: this node's view of its cluster and its NATS traffic, for operators,
//! the black-box tests and the load harness. Internal: not part of the wire contract
//! (docs/api.md says so). 404 `not_found` on a node that is not in cluster mode.

use actix_web::{HttpResponse, web};

use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// The node's id, incarnation and phase, the live nodes, the view's version, the epochs it
/// holds and its NATS client's counters ([`crate::cluster::Status`]).
pub async fn status(cluster: Option<web::Data<Cluster>>) -> Result<HttpResponse> {
    let cluster = cluster.ok_or(Error::Domain(chorus_actors::Error::NotFound("route")))?;
    Ok(HttpResponse::Ok().json(cluster.status()))
}
