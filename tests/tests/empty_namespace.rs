//! Issue 10: empty is not an error. Every read command and endpoint answers in a
//! namespace that has nothing yet (no task, no worker, no dead message).

use serde_json::Value;
use taskfleet_tests::process::cli;
use taskfleet_tests::{Fleet, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_exit_0_in_an_empty_namespace() {
    let fleet = Fleet::new().await;
    for args in [
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["workers"],
        vec!["workers", "--json"],
        vec!["types"],
        vec!["types", "--json"],
        vec!["dead", "list"],
        vec!["dead", "list", "--json"],
    ] {
        let (code, out, err) = cli(&fleet.config, &args, None).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        if args.contains(&"--json") {
            let v: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{args:?} prints JSON: {e}: {out}"));
            assert!(v.is_object() || v.is_array(), "{args:?}: {v}");
        }
    }
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_endpoints_answer_200_in_an_empty_namespace() {
    let fleet = Fleet::new().await;
    let (addr, stop) = http::serve(&fleet).await;
    for path in ["/v1/stats", "/v1/workers", "/v1/types"] {
        let answer = http::request(addr, "GET", path, None, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    stop.cancel();
    fleet.teardown().await;
}
