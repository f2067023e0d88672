//! The admin API against the real binary: health, rooms, a room's people,
//! removing someone (told, then disconnected), ending a room for everyone;
//! nothing without the key; the admin page is served.

mod common;

use common::*;
use serde_json::{Value, json};

const KEY: &str = "admin-key-for-the-test-abcdefgh";

/// Reads until a message of type `t` (others skipped), or None when the socket closes.
async fn until_type(ws: &mut Ws, t: &str) -> Option<Value> {
    loop {
        let m = next_json(ws).await?;
        if m["type"] == t {
            return Some(m);
        }
    }
}

/// Whether the socket closes (skipping messages) within the read timeout.
async fn closes(ws: &mut Ws) -> bool {
    loop {
        match next_json(ws).await {
            None => return true,
            Some(_) => continue,
        }
    }
}

fn get(port: u16, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    let r = http_request(port, "GET", path, &[("Authorization", &auth)], b"");
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

fn delete(port: u16, path: &str) -> u16 {
    let auth = format!("Bearer {KEY}");
    http_request(port, "DELETE", path, &[("Authorization", &auth)], b"").status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_people_removal_and_end_through_the_admin_api() {
    let s = start_with(&[("KAIGI_ADMIN__API_KEY", KEY)]);
    let port = s.http;

    // Nothing without the key.
    for path in ["/api/health", "/api/rooms", "/api/rooms/ops"] {
        let r = http_request(port, "GET", path, &[], b"");
        assert_eq!(r.status, 401, "{path}");
    }
    let r = http_request(
        port,
        "DELETE",
        "/api/rooms/ops",
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(r.status, 401);

    let (status, h) = get(port, "/api/health");
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["participants"], 0);
    assert!(h["worker_participants"].is_array());

    let mut a = connect(port).await;
    let wa = ask(
        &mut a,
        &json!({"type": "join", "v": 1, "room": "ops", "name": "Aoki"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(wa["type"], "welcome");
    let mut b = connect(port).await;
    let wb = ask(
        &mut b,
        &json!({"type": "join", "v": 1, "room": "ops", "name": "Baba"}).to_string(),
    )
    .await
    .unwrap();
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();

    // Per-room gauges and the join timing, for Prometheus.
    let metrics = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("kaigi_room_participants{room=\"ops\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("kaigi_room_viewers{room=\"ops\"} 0"));
    assert!(metrics.contains("kaigi_answer_seconds_count{kind=\"join\"} 2"));

    let (_, rooms) = get(port, "/api/rooms");
    assert_eq!(
        rooms["rooms"],
        json!([{"name": "ops", "participants": 2, "viewers": 0, "tracks": 0, "live": [], "recording": false}])
    );
    let (status, room) = get(port, "/api/rooms/ops");
    assert_eq!(status, 200);
    let names: Vec<&str> = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Aoki", "Baba"]);
    assert_eq!(get(port, "/api/rooms/nope").0, 404);
    assert_eq!(get(port, "/api/rooms/bad%20name").0, 400);

    // Remove Baba: told, then disconnected; Aoki sees the leave.
    assert_eq!(delete(port, "/api/rooms/ops/participants/p99999"), 404);
    assert_eq!(
        delete(
            port,
            "/api/rooms/other/participants/{b_id}"
                .replace("{b_id}", &b_id)
                .as_str()
        ),
        404
    );
    assert_eq!(
        delete(port, &format!("/api/rooms/ops/participants/{b_id}")),
        204
    );
    let removed = until_type(&mut b, "removed").await.expect("Baba is told");
    assert!(removed["by"].as_str().unwrap().contains("administrator"));
    assert!(closes(&mut b).await);
    let left = until_type(&mut a, "participant_left").await.unwrap();
    assert_eq!(left["id"], b_id.as_str());
    assert_eq!(get(port, "/api/rooms").1["rooms"][0]["participants"], 1);

    // End the room: Aoki is told and disconnected; the room is gone.
    assert_eq!(delete(port, "/api/rooms/nope"), 404);
    assert_eq!(delete(port, "/api/rooms/ops"), 204);
    assert!(until_type(&mut a, "meeting_ended").await.is_some());
    assert!(closes(&mut a).await);
    assert_eq!(get(port, "/api/rooms").1["rooms"], json!([]));
    assert_eq!(get(port, "/api/health").1["participants"], 0);
    let metrics = http_get(port, "/metrics").unwrap();
    assert!(
        !metrics.contains("room=\"ops\""),
        "a closed room's labels go"
    );

    // The page itself is public (it asks for the key).
    let r = http_request(port, "GET", "/admin", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("/assets/admin.js"));
}
