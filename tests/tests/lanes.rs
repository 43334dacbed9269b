//! Fan-out in lanes on the local stage, over real sockets: a channel above the
//! lane size is delivered by concurrent lane groups (docs/adr/0004), and every
//! subscriber still gets the channel's messages once each, in one order.

use futures::future::join_all;
use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};

const SUBSCRIBERS: usize = 40;
const MESSAGES: usize = 120;

async fn subscriber(stage: &TestStage, i: usize) -> Client {
    let mut client = stage
        .connect(json!({"scope": "connect", "uid": format!("user-{i}"),
                        "channels": {"wide": {"subscribe": true}}}))
        .await;
    let frame = client.subscribe("wide").await;
    assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    client
}

#[tokio::test]
async fn a_laned_channel_delivers_racing_publishes_to_every_socket_in_one_order() {
    // Lanes of 4: the 40 subscribers spread over many of the 32 lanes.
    let stage =
        TestStage::start_with(|o| o.env.push(("FAN_OUT_LANE_SIZE".into(), "4".into()))).await;
    let mut clients = Vec::new();
    for i in 0..SUBSCRIBERS {
        clients.push(subscriber(&stage, i).await);
    }
    // Published from four racing publishers at once.
    let publishers = (0..4).map(|p| {
        let stage = &stage;
        async move {
            for n in 0..MESSAGES / 4 {
                let (status, body) = stage
                    .server_publish(json!({"channel": "wide", "event": "tick",
                                           "data": {"publisher": p, "n": n}}))
                    .await;
                assert_eq!(status, 202, "{body}");
            }
        }
    });
    join_all(publishers).await;

    let mut orders: Vec<Vec<String>> = Vec::new();
    for client in &mut clients {
        let mut ids = Vec::new();
        let mut per_publisher = [0_i64; 4];
        for _ in 0..MESSAGES {
            let frame: Value = client.expect_event("tick").await;
            ids.push(frame["id"].as_str().expect("id").to_owned());
            // Each publisher's messages keep the order it published them in.
            let p = frame["data"]["publisher"].as_u64().expect("publisher") as usize;
            assert_eq!(frame["data"]["n"], per_publisher[p], "{frame}");
            per_publisher[p] += 1;
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids increase and none repeats");
        orders.push(ids);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every subscriber got the messages in the same order"
    );
    // Read after every tick arrived: the flag is set by the first delivery.
    let laned = stage
        .stage
        .app
        .store
        .channel_audience("wide", sockhop_tests::now())
        .await
        .expect("audience")
        .laned;
    assert!(laned, "a channel over the lane size is fanned out in lanes");

    // Nothing after the last message: a marker published now is next.
    let (status, body) = stage
        .server_publish(json!({"channel": "wide", "event": "marker", "data": null}))
        .await;
    assert_eq!(status, 202, "{body}");
    for client in &mut clients {
        assert_eq!(client.next().await["event"], "marker");
    }
}
