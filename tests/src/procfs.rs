//! Other processes, as /proc shows them (read off the runtime threads): whether one
//! still lives, the pids a program wrote down, its peak memory.

use crate::files::read_text;
use crate::scratch::Scratch;
use crate::wait::eventually;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::time::Duration;

/// Whether `pid` is a live process; a zombie (dead, waiting to be reaped by its
/// parent) counts as gone.
pub async fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = read_text(format!("/proc/{pid}/stat"))
        .await
        .unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Pids a script wrote to `name`, once the file is there.
pub async fn pids_in(scratch: &Scratch, name: &str) -> Vec<i32> {
    eventually(
        Duration::from_secs(15),
        &format!("{name} written"),
        || async {
            scratch.text(name).await.map(|t| {
                t.split_whitespace()
                    .map(|p| p.parse().expect("a pid"))
                    .collect()
            })
        },
    )
    .await
}

/// Waits until none of `pids` is alive; panics after `deadline`.
pub async fn assert_all_gone(pids: &[i32], deadline: Duration) {
    eventually(
        deadline,
        &format!("processes {pids:?} to be gone"),
        || async {
            for &p in pids {
                if alive(p).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// /proc/PID/status VmHWM (peak resident memory) in KiB.
pub async fn peak_rss_kib(pid: i32) -> u64 {
    let status = read_text(format!("/proc/{pid}/status"))
        .await
        .expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// CPU seconds (user + system, all threads) `pid` has used so far, from
/// /proc/PID/stat; 0 when the process is gone.
pub async fn cpu_seconds(pid: i32) -> f64 {
    let stat = read_text(format!("/proc/{pid}/stat"))
        .await
        .unwrap_or_default();
    // Fields after the parenthesised name: state is the 3rd field, utime the 14th
    // and stime the 15th of the whole line.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // /proc counts in USER_HZ, which the kernel's ABI fixes at 100 on Linux.
    (ticks(11) + ticks(12)) as f64 / 100.0
}
