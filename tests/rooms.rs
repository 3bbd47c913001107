//! Rooms: client join/leave through the filter and validator, programmatic join/leave,
//! queries, and the own-id room.

#![allow(clippy::unwrap_used)]

mod common;

use common::{eventually, spawn, test_builder};
use sealcast::{Identity, RoomError, Server};
use serde_json::json;

#[tokio::test]
async fn join_filters_then_validates_and_leave_only_joined_rooms() {
    let srv = spawn(test_builder()).await;
    let mut c = srv.authed("alice").await;
    let id = c.id.clone().unwrap();
    let long_ok = "é".repeat(256);
    let too_long = "é".repeat(257);
    c.emit(
        "join",
        json!({"rooms": ["public-a", "private-b", "ws:room:x", "", too_long, long_ok, 7, null, "public-a"]}),
    )
    .await;
    assert!(eventually(|| srv.server.clients_by_room("public-a").len() == 1).await);
    let info = srv.server.client(&id).unwrap();
    assert!(info.rooms.contains(&"public-a".to_owned()));
    assert!(
        info.rooms.contains(&"é".repeat(256)),
        "length counts characters"
    );
    assert!(
        !info.rooms.iter().any(|r| r == "private-b"),
        "validator refused it"
    );
    assert!(!info.rooms.iter().any(|r| r.starts_with("ws:")));
    assert_eq!(info.rooms.len(), 5, "{:?}", info.rooms);

    c.leave(&["public-a", "never-joined"]).await;
    assert!(eventually(|| srv.server.clients_by_room("public-a").is_empty()).await);
    assert_eq!(srv.server.client(&id).unwrap().rooms.len(), 4);
}

#[tokio::test]
async fn without_a_validator_every_join_is_refused() {
    let srv =
        spawn(Server::builder().authenticate(|r| async move { Ok(r.token().map(Identity::user)) }))
            .await;
    let mut c = srv.authed("u").await;
    c.join(&["anything"]).await;
    c.emit("heartbeat", json!(null)).await;
    c.expect_silence().await;
    assert!(srv.server.clients_by_room("anything").is_empty());
}

#[tokio::test]
async fn validator_cannot_grant_unrequested_rooms() {
    let srv =
        spawn(test_builder().validate_rooms(|_| async { Ok(vec!["a".into(), "sneaky".into()]) }))
            .await;
    let mut c = srv.authed("u").await;
    c.join(&["a"]).await;
    assert!(eventually(|| srv.server.clients_by_room("a").len() == 1).await);
    assert!(srv.server.clients_by_room("sneaky").is_empty());
}

#[tokio::test]
async fn a_panicking_or_failing_validator_refuses_only_that_join() {
    let srv = spawn(test_builder().validate_rooms(|req| async move {
        match req.rooms[0].as_str() {
            "panic-now" => panic!("validator bug"),
            "panic-later" => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                panic!("validator bug, later")
            }
            "fail" => Err("policy store down".into()),
            _ => Ok(req.rooms),
        }
    }))
    .await;
    let mut c = srv.authed("v").await;
    for room in ["panic-now", "panic-later", "fail", "fine"] {
        c.join(&[room]).await;
    }
    assert!(eventually(|| srv.server.clients_by_room("fine").len() == 1).await);
    for room in ["panic-now", "panic-later", "fail"] {
        assert!(srv.server.clients_by_room(room).is_empty(), "{room}");
    }
    srv.server.broadcast("still", &json!(1), &[]).unwrap();
    assert_eq!(c.expect_event("still").await["data"], 1);
}

#[tokio::test]
async fn own_id_room_cannot_be_left_and_other_ids_cannot_be_joined() {
    let srv = spawn(test_builder()).await;
    let mut a = srv.authed("a").await;
    let mut b = srv.authed("b").await;
    let a_id = a.id.clone().unwrap();
    let b_id = b.id.clone().unwrap();
    a.leave(&[a_id.as_str()]).await;
    b.join(&[a_id.as_str()]).await;
    b.emit("heartbeat", json!(null)).await;
    a.emit("heartbeat", json!(null)).await;
    tokio::time::sleep(common::QUIET).await;
    assert_eq!(srv.server.leave_room(&a_id, &a_id), Err(RoomError::OwnRoom));
    let members: Vec<String> = srv
        .server
        .clients_by_room(&a_id)
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(members, vec![a_id.clone()]);
    // A message routed to the id as a room (how other instances relay direct messages) reaches
    // exactly the client.
    srv.server
        .send_to_room(&a_id, "direct", &json!(1), &[])
        .unwrap();
    a.expect_event("direct").await;
    b.expect_silence().await;
    let _ = b_id;
}

#[tokio::test]
async fn programmatic_join_and_leave_and_queries() {
    let srv = spawn(test_builder()).await;
    let a = srv.authed("same-user").await;
    let b = srv.authed("same-user").await;
    let pending = srv.client().await;
    let (a_id, b_id) = (a.id.clone().unwrap(), b.id.clone().unwrap());
    let s = &srv.server;
    assert_eq!(s.join_room(&a_id, "ops"), Ok(true));
    assert_eq!(s.join_room(&a_id, "ops"), Ok(false));
    assert!(matches!(
        s.join_room(&a_id, "ws:nope"),
        Err(RoomError::InvalidName(_))
    ));
    assert_eq!(
        s.join_room("no-such-client", "ops"),
        Err(RoomError::UnknownClient)
    );
    let pending_id = s
        .clients()
        .into_iter()
        .find(|c| c.user_id.is_none())
        .unwrap()
        .id;
    assert_eq!(
        s.join_room(&pending_id, "ops"),
        Err(RoomError::NotAuthenticated)
    );
    assert_eq!(s.clients_by_room("ops").len(), 1);
    assert_eq!(s.clients_by_user("same-user").len(), 2);
    assert_eq!(s.clients().len(), 3);
    assert_eq!(s.leave_room(&a_id, "ops"), Ok(true));
    assert_eq!(s.leave_room(&a_id, "ops"), Ok(false));
    assert!(s.clients_by_room("ops").is_empty());
    assert_eq!(
        s.stats().rooms,
        4,
        "empty rooms are dropped: 2 own-id + 2 default"
    );
    a.close().await;
    assert!(eventually(|| s.clients_by_user("same-user").len() == 1).await);
    b.close().await;
    assert!(
        eventually(|| s.stats().users == 0).await,
        "empty user entries are dropped"
    );
    drop(pending);
    let _ = b_id;
}

#[tokio::test]
async fn room_limits_per_request_and_per_client() {
    let limits = sealcast::protocol::Limits {
        max_rooms_per_request: 4,
        max_rooms_per_client: 6,
        ..Default::default()
    };
    let srv = spawn(test_builder().limits(limits)).await;
    let mut c = srv.authed("lim").await;
    let id = c.id.clone().unwrap();
    c.join(&["a", "b", "c", "d", "e"]).await;
    c.expect_error("Invalid message format").await;
    c.join(&["a", "b", "c", "d"]).await;
    c.emit("heartbeat", json!(null)).await;
    tokio::time::sleep(common::QUIET).await;
    // own-id + 2 defaults + 3 of the 4 requested = the limit of 6.
    assert_eq!(srv.server.client(&id).unwrap().rooms.len(), 6);
}
