//! `taskfleet schedules [--json]`: every schedule the fleet runs, its next and last
//! fire and its leader (from `{ns}:schedule:{name}`).

use crate::error::Result;
use crate::{Producer, producer};
use taskfleet_common::Config;

pub async fn run(config: Config, json: bool) -> Result<()> {
    let store = Producer::connect_store(&config).await?;
    if json {
        println!("{}", producer::schedules_json(&store).await?);
        return Ok(());
    }
    let now = store.server_time_ms().await?;
    println!(
        "{:<24} {:<16} {:<20} {:>10} {:>10}  {:<36} LEADER",
        "SCHEDULE", "TYPE", "WHEN", "NEXT IN", "LAST AGO", "LAST ID"
    );
    for s in store.schedules().await? {
        let f = |k: &str| s.fields.get(k).map(String::as_str).unwrap_or("-");
        let when = s
            .fields
            .get("cron")
            .map(|c| format!("cron {c}"))
            .or_else(|| s.fields.get("every").map(|e| format!("every {e}")))
            .unwrap_or_else(|| "-".into());
        let ms = |k: &str| s.fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let next_in = ms("next_at").map_or("-".into(), |t| format!("{}ms", t.saturating_sub(now)));
        let last_ago = ms("last_at").map_or("-".into(), |t| format!("{}ms", now.saturating_sub(t)));
        println!(
            "{:<24} {:<16} {:<20} {:>10} {:>10}  {:<36} {}",
            s.name,
            f("type"),
            when,
            next_in,
            last_ago,
            f("last_id"),
            f("leader")
        );
    }
    Ok(())
}
