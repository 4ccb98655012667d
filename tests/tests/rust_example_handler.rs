//! Issue 6: the Rust example handler (`worker/examples/resize.rs`) resumes from its
//! checkpoint after a retry and gives up at once on input that can never work.

#[path = "../../worker/examples/resize.rs"]
mod resize;

use serde_json::json;
use std::path::Path;
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::config::TypeConfig;
use taskfleet_tests::files;
use taskfleet_tests::record::json_of;
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually, test_config, worker_with};

/// A 4×4 plain PGM with pixel values 0..=15, row by row.
const GRADIENT: &str = "P2\n# a test image\n4 4\n15\n0 1 2 3\n4 5 6 7\n8 9 10 11\n12 13 14 15\n";

/// `GRADIENT` scaled to 2×2 by nearest neighbour.
const GRADIENT_2X2: &str = "P2\n2 2\n15\n0 2\n8 10\n";

async fn fleet_with_resize(max_attempts: u32) -> Fleet {
    let mut config = test_config();
    config.types.insert(
        "resize".into(),
        TypeConfig {
            max_attempts: Some(max_attempts),
            ..Default::default()
        },
    );
    let mut fleet = Fleet::with_config(config).await;
    let worker = worker_with(&fleet, "resize", resize::Resize);
    fleet.start_worker_with(worker).await;
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_example_resumes_from_its_checkpoint_after_a_retry() {
    let scratch = Scratch::new();
    let fleet = fleet_with_resize(30).await;
    let a = scratch.write("a.pgm", GRADIENT).await;
    let b = scratch.write("b.pgm", GRADIENT).await;
    let c = scratch.path("c.pgm"); // not there yet
    let image = |src: &Path, dst: &str| json!({"src": src, "dst": scratch.path(dst)});
    let payload = json!({
        "images": [image(&a, "a-2x2.pgm"), image(&b, "b-2x2.pgm"), image(&c, "c-2x2.pgm")],
        "width": 2,
        "height": 2,
    });
    let id = fleet.enqueue("resize", &payload.to_string()).await;

    // The first attempt makes two thumbnails, checkpoints, then fails on the third.
    let r = eventually(
        Duration::from_secs(15),
        "checkpoint after two images and a retryable error",
        || async {
            fleet.record(&id).await.filter(|r| {
                r.get("checkpoint") == Some(r#"{"done":2}"#)
                    && r.get("error").is_some_and(|e| e.contains("c.pgm"))
            })
        },
    )
    .await;
    assert_eq!(r.get("progress"), Some("66"));
    assert_eq!(r.get("progress_message"), Some("2 of 3 images"));
    assert_eq!(
        scratch.text("a-2x2.pgm").await.as_deref(),
        Some(GRADIENT_2X2)
    );
    // A later attempt that redid the first two images would now fail for good.
    files::remove(&a).await;
    files::remove(&b).await;
    scratch.write("c.pgm", GRADIENT).await;

    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(30))
        .await;
    assert_eq!(
        json_of(r.get("result")),
        json!({"resized": 3, "resumed_from": 2})
    );
    assert!(r.attempt() >= 2, "{r:?}");
    assert_eq!(r.get("checkpoint"), Some(r#"{"done":3}"#));
    for thumb in ["a-2x2.pgm", "b-2x2.pgm", "c-2x2.pgm"] {
        assert_eq!(
            scratch.text(thumb).await.as_deref(),
            Some(GRADIENT_2X2),
            "{thumb}"
        );
    }
    let s = fleet.stats("resize").await;
    assert_eq!((s.completed, s.failed, s.live()), (1, 0, 0));
    assert_eq!(s.retried, i64::from(r.attempt()) - 1);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_example_gives_up_at_once_on_a_file_that_is_not_an_image() {
    let scratch = Scratch::new();
    let fleet = fleet_with_resize(5).await;
    let src = scratch.write("notes.txt", "shopping: milk, eggs\n").await;
    let payload = json!({
        "images": [{"src": src, "dst": scratch.path("out.pgm")}],
        "width": 2,
        "height": 2,
    });
    let id = fleet.enqueue("resize", &payload.to_string()).await;
    let bad_payload = fleet.enqueue("resize", r#"{"images":[]}"#).await;

    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 1, "no retry");
    let error = r.get("error").expect("an error");
    assert!(error.contains("not a plain PGM"), "{error}");
    let r = fleet
        .wait_for_state(&bad_payload, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 1, "no retry");
    let error = r.get("error").expect("an error");
    assert!(error.contains("\"width\""), "{error}");
    assert!(scratch.text("out.pgm").await.is_none());
    let s = fleet.stats("resize").await;
    assert_eq!((s.failed, s.retried, s.completed), (2, 0, 0));
    fleet.teardown().await;
}
