//! Webhook delivery: the signing scheme against published vectors, the delivery modes,
//! retries and redelivery, seen from a receiver on port 0.

use std::time::Duration;

use super::tests::{open_session, sim_with_receiver, verifies, Received, WAIT, WHSEC};
use super::webhook::sign;
use super::Delivery;
use crate::simulators::test_client::send;
use crate::simulators::{ControlError, DeliveryMode, DeliveryOutcome};

#[test]
fn signatures_match_the_published_vectors() {
    // stripe-dotnet EventUtilityTest: event_test_signature.json, 484 bytes with its
    // trailing newline, signed with "webhook_secret" at t=1533204620.
    let fixture = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;
    assert_eq!(fixture.len(), 484);
    assert_eq!(
        sign("webhook_secret", 1_533_204_620, fixture.as_bytes()),
        "2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7"
    );
    assert_eq!(
        sign(
            "webhook_secret",
            1_533_204_620,
            fixture.trim_end().as_bytes()
        ),
        "8c506d7d19ece69e9a38e398964787dda54eeb2583381ffc7f56070c28d7f119"
    );

    // stripe-python's test constants, with the whsec_ prefix kept in the key.
    let payload = "{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\",\n  \"data\": { \"object\": { \"id\": \"rdr_123\", \"object\": \"terminal.reader\" } }\n}";
    assert_eq!(payload.len(), 125);
    assert_eq!(
        sign("whsec_test_secret", 1_700_000_000, payload.as_bytes()),
        "3bfab77baf5f7b6991a46c9b53b6547d7afc56148b10468fcad9f35c1992ffbd"
    );
    assert_eq!(
        sign("test_secret", 1_700_000_000, payload.as_bytes()),
        "99d99418c47cdcf57af4730b6e392bf86f86f551f899b30f8855e91ea0a500bf"
    );
}

#[tokio::test]
async fn duplicate_mode_sends_each_event_twice() {
    let (sim, receiver) = sim_with_receiver(&[]).await;
    sim.set_delivery(DeliveryMode::Duplicate);
    let id = open_session(&sim).await;
    sim.pay(&id).expect("pay");
    let two = |log: &[Delivery]| log.iter().filter(|d| d.outcome.is_success()).count() == 2;
    assert!(
        sim.wait_deliveries(WAIT, two).await,
        "{:?}",
        sim.deliveries()
    );

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].event_id(), received[1].event_id());
    assert_eq!(received[0].body, received[1].body);
    for request in &received {
        assert!(verifies(
            request.header("stripe-signature"),
            &request.body,
            WHSEC
        ));
    }
    assert_eq!(sim.events().len(), 1);
    assert!(sim.deliveries().iter().all(|d| d.attempt == 1));
}

#[tokio::test]
async fn held_events_are_released_in_reverse() {
    let (sim, receiver) = sim_with_receiver(&[]).await;
    sim.set_delivery(DeliveryMode::Held);
    let id = open_session(&sim).await;
    sim.pay(&id).expect("pay");
    sim.refund(&id, Some(500)).expect("refund");
    sim.dispute(&id).expect("dispute");
    let created: Vec<String> = sim
        .events()
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(created.len(), 3);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty());
    assert!(sim.deliveries().is_empty());

    assert_eq!(sim.release_held_in_reverse(), 3);
    assert!(sim.wait_deliveries(WAIT, |log| log.len() == 3).await);
    let order: Vec<String> = receiver.received().iter().map(Received::event_id).collect();
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(order, reversed);
    let types: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "charge.dispute.created",
            "charge.refunded",
            "checkout.session.completed"
        ]
    );
    assert_eq!(sim.release_held(), 0);
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let (sim, receiver) = sim_with_receiver(&[500]).await;
    let id = open_session(&sim).await;
    sim.pay(&id).expect("pay");
    let event_id = sim.events()[0]["id"].as_str().expect("id").to_owned();
    let delivery = sim
        .wait_delivered(&event_id, WAIT)
        .await
        .expect("delivered");
    assert_eq!(delivery.attempt, 2);
    let outcomes: Vec<(u32, DeliveryOutcome)> = sim
        .deliveries()
        .into_iter()
        .map(|d| (d.attempt, d.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, DeliveryOutcome::Status(500)),
            (2, DeliveryOutcome::Status(200))
        ]
    );
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
    for request in &received {
        assert!(verifies(
            request.header("stripe-signature"),
            &request.body,
            WHSEC
        ));
    }

    // An endpoint that is not there: a connection error, recorded, then retried.
    let closed = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let url = format!("http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);
    sim.set_webhook_url(url);
    sim.refund(&id, None).expect("refund");
    let refund_event = sim.events()[1]["id"].as_str().expect("id").to_owned();
    let two_failures = |log: &[Delivery]| {
        log.iter()
            .filter(|d| {
                d.event_id == refund_event && matches!(d.outcome, DeliveryOutcome::Error(_))
            })
            .count()
            == 2
    };
    assert!(
        sim.wait_deliveries(WAIT, two_failures).await,
        "{:?}",
        sim.deliveries()
    );
    let attempts: Vec<u32> = sim
        .deliveries()
        .iter()
        .filter(|d| d.event_id == refund_event)
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn redelivery_sends_the_same_event_freshly_signed() {
    let (sim, receiver) = sim_with_receiver(&[]).await;
    let id = open_session(&sim).await;
    sim.pay(&id).expect("pay");
    let event_id = sim.events()[0]["id"].as_str().expect("id").to_owned();
    sim.wait_delivered(&event_id, WAIT)
        .await
        .expect("delivered");

    sim.redeliver(&event_id).expect("redeliver");
    assert!(sim.wait_deliveries(WAIT, |log| log.len() == 2).await);
    let url = format!("{}/_sim/events/{event_id}/redeliver", sim.base_url());
    let response = send("POST", &url, &[], "").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(sim.wait_deliveries(WAIT, |log| log.len() == 3).await);

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.event_id(), event_id);
        assert_eq!(request.body, received[0].body);
        assert!(verifies(
            request.header("stripe-signature"),
            &request.body,
            WHSEC
        ));
    }
    assert_eq!(sim.events().len(), 1);
    assert_eq!(
        sim.redeliver("evt_unknown"),
        Err(ControlError::NoSuchEvent("evt_unknown".to_owned()))
    );
}
