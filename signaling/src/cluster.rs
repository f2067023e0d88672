//! Several kaigi nodes, coordinated through Redis (no consensus of our
//! own): each node registers itself under a key that expires unless its
//! heartbeat renews it, and each room is homed on one node, recorded under
//! a key only its home renews. A join, a meeting page, a WHIP or WHEP
//! request for a room homed elsewhere is sent there (`redirect`, 307); a
//! room whose home stopped renewing is taken over by the next node asked.
//!
//! Redis unreachable: this node keeps serving what it has and takes new
//! rooms itself (counted); once Redis is back its heartbeat records them.
//!
//! Keys: `kaigi:node:{id}` (JSON: id, site, url, load; TTL three
//! heartbeats), `kaigi:room:{room}` (the home node's id; same TTL).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::ClusterConfig;
use crate::http::AppState;

const NODE_KEY: &str = "kaigi:node:";
const ROOM_KEY: &str = "kaigi:room:";
/// No join waits longer than this for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Claims a room for ARGV[1] unless a live node (its key exists) has it;
/// gives the owner after the call.
const CLAIM: &str = r#"
local owner = redis.call('GET', KEYS[1])
if (not owner) or owner == ARGV[1] or redis.call('EXISTS', ARGV[3] .. owner) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return ARGV[1]
end
return owner
"#;

/// Renews a room's key for ARGV[1], or writes it again if it is gone (Redis
/// restarted empty): 1; 0 if another node owns it now.
const RENEW: &str = r#"
local owner = redis.call('GET', KEYS[1])
if (not owner) or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"#;

/// Deletes a room's key if ARGV[1] owns it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A node as the registry has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// Its site.
    pub site: String,
    /// How clients reach it.
    pub url: String,
    /// Participants in its rooms.
    pub participants: usize,
    /// WHEP viewers it serves.
    pub viewers: usize,
    /// Rooms it hosts.
    pub rooms: usize,
}

/// Where a room is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here (its home, newly claimed, or Redis is unreachable).
    Here,
    /// On another live node, reached at `url`.
    There {
        /// The home node's id.
        node: String,
        /// Its base URL.
        url: String,
    },
}

/// This node's part in the cluster.
pub struct Cluster {
    id: String,
    site: String,
    url: String,
    redis_url: String,
    heartbeat: Duration,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Rooms this node has claimed and renews.
    homed: Mutex<HashSet<String>>,
    /// The other nodes at the last heartbeat.
    others: Mutex<Vec<Node>>,
    up: AtomicBool,
    claim: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl Cluster {
    /// The cluster part, when `cluster.redis_url` is set.
    pub fn new(cfg: &ClusterConfig) -> Option<Cluster> {
        let redis_url = cfg.redis_url.clone()?;
        let id = cfg.node_id.clone().unwrap_or_else(host_name);
        Some(Cluster {
            id,
            site: cfg.site.clone(),
            url: cfg.url.clone()?.trim_end_matches('/').to_owned(),
            redis_url,
            heartbeat: Duration::from_secs(cfg.heartbeat_secs),
            conn: tokio::sync::Mutex::new(None),
            homed: Mutex::new(HashSet::new()),
            others: Mutex::new(Vec::new()),
            up: AtomicBool::new(false),
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        })
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the last exchange with Redis worked.
    pub fn redis_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn ttl_secs(&self) -> u64 {
        self.heartbeat.as_secs().max(1) * 3
    }

    /// A connection (the manager reconnects by itself once made).
    async fn conn(&self) -> Option<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            let client = redis::Client::open(self.redis_url.as_str()).ok()?;
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(REDIS_TIMEOUT)
                .set_response_timeout(REDIS_TIMEOUT)
                .set_number_of_retries(1);
            match tokio::time::timeout(
                REDIS_TIMEOUT * 2,
                ConnectionManager::new_with_config(client, cfg),
            )
            .await
            {
                Ok(Ok(c)) => *slot = Some(c),
                _ => return None,
            }
        }
        slot.clone()
    }

    /// Runs a Redis exchange with a deadline; records whether Redis answered.
    async fn ask<T>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let result = match self.conn().await {
            Some(mut c) => tokio::time::timeout(REDIS_TIMEOUT * 2, f(&mut c))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let ok = result.is_some();
        if self.up.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                info!(node = %self.id, "redis reachable: cluster routing on");
            } else {
                warn!(node = %self.id, "redis unreachable: serving new rooms here until it returns");
            }
        }
        result
    }

    /// Where `room` is served, claiming it for this node when nobody live has it.
    pub async fn route(&self, room: &str) -> Route {
        let key = format!("{ROOM_KEY}{room}");
        let owner: Option<String> = self
            .ask(async |c| {
                self.claim
                    .key(&key)
                    .arg(&self.id)
                    .arg(self.ttl_secs())
                    .arg(NODE_KEY)
                    .invoke_async(c)
                    .await
            })
            .await;
        let Some(owner) = owner else {
            return Route::Here;
        };
        if owner == self.id {
            self.homed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(room.to_owned());
            return Route::Here;
        }
        self.node_route(&owner).await
    }

    /// Where `room` is homed, without claiming it: a viewer asking about a
    /// room must not make its branch office the room's home. `Here` also
    /// when nobody has it (or Redis is away).
    pub async fn home(&self, room: &str) -> Route {
        let key = format!("{ROOM_KEY}{room}");
        let owner: Option<Option<String>> = self
            .ask(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await;
        match owner.flatten() {
            Some(owner) if owner != self.id => self.node_route(&owner).await,
            _ => Route::Here,
        }
    }

    async fn node_route(&self, owner: &str) -> Route {
        let node_key = format!("{NODE_KEY}{owner}");
        let record: Option<Option<String>> = self
            .ask(async |c| redis::cmd("GET").arg(&node_key).query_async(c).await)
            .await;
        match record
            .flatten()
            .and_then(|j| serde_json::from_str::<Node>(&j).ok())
        {
            Some(n) => Route::There {
                node: n.id,
                url: n.url,
            },
            // Gone: the next claim takes it.
            None => Route::Here,
        }
    }

    /// This node's site.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The live node of `site` that serves `room`'s viewers there: the same
    /// one for every viewer of the room (rendezvous hashing), so that the
    /// site's WAN link carries the room once; rooms spread over the site's nodes.
    pub fn node_at(&self, site: &str, room: &str) -> Option<String> {
        self.others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|n| n.site == site)
            .max_by_key(|n| rendezvous(room, &n.id))
            .map(|n| n.url.clone())
    }

    /// The nodes registered now.
    pub async fn nodes(&self) -> Vec<Node> {
        // SCAN, not KEYS: a shared Redis is not blocked while it walks its keys.
        let keys: Vec<String> = self
            .ask(async |c| {
                let mut keys = Vec::new();
                let mut cursor = 0u64;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{NODE_KEY}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(c)
                        .await?;
                    keys.extend(batch);
                    if next == 0 || keys.len() > 10_000 {
                        return Ok(keys);
                    }
                    cursor = next;
                }
            })
            .await
            .unwrap_or_default();
        if keys.is_empty() {
            return Vec::new();
        }
        let values: Vec<Option<String>> = self
            .ask(async |c| redis::cmd("MGET").arg(&keys).query_async(c).await)
            .await
            .unwrap_or_default();
        let mut nodes: Vec<Node> = values
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    /// One heartbeat: the node's record, and its rooms' keys renewed
    /// (claimed, for rooms opened while Redis was away; released, for rooms
    /// that ended).
    pub async fn beat(&self, state: &AppState) {
        let rooms = state.sfu.control(|e| e.rooms());
        let node = Node {
            id: self.id.clone(),
            site: self.site.clone(),
            url: self.url.clone(),
            participants: rooms.iter().map(|r| r.participants).sum(),
            viewers: rooms.iter().map(|r| r.viewers).sum(),
            rooms: rooms.len(),
        };
        let ttl = self.ttl_secs();
        let json = serde_json::to_string(&node).expect("node serialises");
        let key = format!("{NODE_KEY}{}", self.id);
        let wrote: Option<()> = self
            .ask(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&json)
                    .arg("EX")
                    .arg(ttl)
                    .query_async(c)
                    .await
            })
            .await;
        if wrote.is_none() {
            state.metrics.cluster_redis_errors.inc();
            return;
        }
        let live: HashSet<String> = rooms.into_iter().map(|r| r.name).collect();
        let homed: Vec<String> = self
            .homed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for room in &homed {
            let key = format!("{ROOM_KEY}{room}");
            if live.contains(room) {
                let kept: Option<i64> = self
                    .ask(async |c| {
                        self.renew
                            .key(&key)
                            .arg(&self.id)
                            .arg(ttl)
                            .invoke_async(c)
                            .await
                    })
                    .await;
                if kept == Some(0) {
                    warn!(room, node = %self.id, "another node took this room over while we still host it");
                    state.metrics.cluster_conflicts.inc();
                }
            } else {
                let released: Option<i64> = self
                    .ask(async |c| self.release.key(&key).arg(&self.id).invoke_async(c).await)
                    .await;
                if released.is_some() {
                    self.homed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(room);
                }
            }
        }
        // Rooms opened here while Redis was away: record them now. (Not the
        // rooms relayed here: their home is their origin.)
        let relayed: HashSet<String> = state.relays.running().into_iter().map(|(r, _)| r).collect();
        for room in live
            .iter()
            .filter(|r| !homed.contains(*r) && !relayed.contains(*r))
        {
            if let Route::There { node, .. } = self.route(room).await {
                warn!(room, other = %node, "a room opened here while Redis was away is homed on another node");
                state.metrics.cluster_conflicts.inc();
            }
        }
        let nodes = self.nodes().await;
        state.metrics.cluster_nodes.set(nodes.len() as i64);
        *self.others.lock().unwrap_or_else(|e| e.into_inner()) =
            nodes.into_iter().filter(|n| n.id != self.id).collect();
    }

    /// Where a client goes if this node stops answering: the other live
    /// nodes at the last heartbeat, this node's site first.
    pub fn fallbacks(&self) -> Vec<String> {
        self.fallbacks_via(None)
    }

    /// [`Cluster::fallbacks`] for a viewer of a broadcast relayed from
    /// `origin`: after this site's nodes, the origin (a branch office may
    /// not reach the others).
    pub fn fallbacks_via(&self, origin: Option<&str>) -> Vec<String> {
        let mut others = self
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        others.sort_by_key(|n| {
            (
                n.site != self.site,
                Some(n.url.as_str()) != origin,
                n.participants + n.viewers,
            )
        });
        others.into_iter().map(|n| n.url).collect()
    }

    /// Heartbeats until the process ends.
    pub async fn run(self: std::sync::Arc<Self>, state: std::sync::Arc<AppState>) {
        info!(node = %self.id, site = %self.site, url = %self.url, "cluster: registering with redis");
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.beat(&state).await;
            state
                .metrics
                .cluster_redis_up
                .set(i64::from(self.redis_up()));
        }
    }

    /// Takes this node out of the registry (a clean stop), releasing its rooms.
    pub async fn leave(&self) {
        let key = format!("{NODE_KEY}{}", self.id);
        let _: Option<()> = self
            .ask(async |c| redis::cmd("DEL").arg(&key).query_async(c).await)
            .await;
        let homed: Vec<String> = self
            .homed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for room in homed {
            let key = format!("{ROOM_KEY}{room}");
            let _: Option<i64> = self
                .ask(async |c| self.release.key(&key).arg(&self.id).invoke_async(c).await)
                .await;
        }
    }
}

/// A room's weight on a node (FNV-1a of both): the node with the highest serves it.
fn rendezvous(room: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys: finish with a multiply-xorshift.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The host name, for a node id.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| sfu::room::validate_name(h).is_ok())
        .unwrap_or_else(|| "kaigi".into())
}

/// The same path (and query) on `base`, another node.
pub fn redirect_url(base: &str, path_and_query: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path_and_query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_a_sites_nodes_and_stay_put() {
        let nodes = ["edge-1", "edge-2", "edge-3"];
        let pick = |room: &str| {
            *nodes
                .iter()
                .max_by_key(|n| rendezvous(room, n))
                .expect("nodes")
        };
        let mut per_node = std::collections::HashMap::new();
        for i in 0..300 {
            let room = format!("room-{i}");
            assert_eq!(pick(&room), pick(&room));
            *per_node.entry(pick(&room)).or_insert(0) += 1;
        }
        // Each of three nodes gets a fair share (expected 100 each).
        assert!(
            per_node.values().all(|&n| (60..=140).contains(&n)),
            "{per_node:?}"
        );
        // A node leaving moves only its own rooms.
        for i in 0..300 {
            let room = format!("room-{i}");
            let before = pick(&room);
            let after = *nodes[..2]
                .iter()
                .max_by_key(|n| rendezvous(&room, n))
                .expect("nodes");
            if before != "edge-3" {
                assert_eq!(before, after);
            }
        }
    }
}
