//! Fleet-wide flow control of a task type (docs/flow-control.md): `rate_limit`,
//! `max_running`, `group_max_running`, and why a claim made a delivery wait.
//! Plain values; `claim.lua` (with `flow.lua`) enforces them in Redis.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The period of a rate: `/s`, `/m`, `/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePeriod {
    Second,
    Minute,
    Hour,
}

impl RatePeriod {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            RatePeriod::Second => 1,
            RatePeriod::Minute => 60,
            RatePeriod::Hour => 3600,
        })
    }

    fn suffix(self) -> &'static str {
        match self {
            RatePeriod::Second => "s",
            RatePeriod::Minute => "m",
            RatePeriod::Hour => "h",
        }
    }
}

/// `rate_limit = "20/s"` or `"20/s burst 5"`: at most `count` starts per `per`
/// fleet-wide, evenly spaced (GCRA), with up to `burst` starts at once after a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: RatePeriod,
    /// Starts allowed back to back; 1 (the default) spaces every start evenly.
    pub burst: u32,
}

/// Largest `count` or `burst` of a rate: far beyond any real limit, small enough that
/// the script's microsecond arithmetic stays exact in a Lua double.
pub const MAX_RATE: u32 = 1_000_000;

impl RateLimit {
    /// Microseconds between two starts at the steady rate (at least 1).
    pub fn interval_us(&self) -> u64 {
        (self.per.duration().as_micros() as u64 / u64::from(self.count.max(1))).max(1)
    }

    /// The stricter of two limits: the one with the longer interval, then the
    /// smaller burst.
    pub fn stricter(self, other: RateLimit) -> RateLimit {
        match self.interval_us().cmp(&other.interval_us()) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal if self.burst <= other.burst => self,
            std::cmp::Ordering::Equal => other,
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.suffix())?;
        if self.burst > 1 {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str =
            "must look like \"20/s\", \"100/m\" or \"5/h\", optionally followed by \" burst N\"";
        let mut words = s.split_whitespace();
        let rate = words.next().ok_or(FORM)?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => 1,
            (Some("burst"), Some(n), None) => n.parse::<u32>().map_err(|_| FORM)?,
            _ => return Err(FORM.into()),
        };
        let (count, per) = rate.split_once('/').ok_or(FORM)?;
        let count = count.parse::<u32>().map_err(|_| FORM)?;
        let per = match per {
            "s" => RatePeriod::Second,
            "m" => RatePeriod::Minute,
            "h" => RatePeriod::Hour,
            _ => return Err(FORM.into()),
        };
        if count == 0 || burst == 0 {
            return Err("must allow at least 1 start (and a burst of at least 1); pause the type to stop it".into());
        }
        if count > MAX_RATE || burst > MAX_RATE {
            return Err(format!("count and burst must be at most {MAX_RATE}"));
        }
        Ok(RateLimit { count, per, burst })
    }
}

/// The flow limits of one type as a worker resolved them (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowLimits {
    pub rate: Option<RateLimit>,
    pub max_running: Option<u32>,
    pub group_max_running: Option<u32>,
}

impl FlowLimits {
    /// The stricter of each limit (a missing one is no limit).
    pub fn stricter(self, other: FlowLimits) -> FlowLimits {
        fn min(a: Option<u32>, b: Option<u32>) -> Option<u32> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        FlowLimits {
            rate: match (self.rate, other.rate) {
                (Some(a), Some(b)) => Some(a.stricter(b)),
                (a, b) => a.or(b),
            },
            max_running: min(self.max_running, other.max_running),
            group_max_running: min(self.group_max_running, other.group_max_running),
        }
    }
}

/// Why the claim made a delivery wait instead of starting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowWait {
    /// The type is paused (`taskfleet pause`).
    Paused,
    /// No token of the type's `rate_limit` yet.
    Rate,
    /// `max_running` tasks of the type run already.
    MaxRunning,
    /// `group_max_running` tasks of the task's group run already.
    GroupMaxRunning,
}

impl FlowWait {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowWait::Paused => "paused",
            FlowWait::Rate => "rate_limit",
            FlowWait::MaxRunning => "max_running",
            FlowWait::GroupMaxRunning => "group_max_running",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            FlowWait::Paused,
            FlowWait::Rate,
            FlowWait::MaxRunning,
            FlowWait::GroupMaxRunning,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }
}

/// Longest accepted `--group` key, in bytes.
pub const MAX_GROUP_LEN: usize = 128;

/// Checks a `--group` key: 1 to 128 bytes, no whitespace or control characters.
pub fn check_group(group: &str) -> Result<(), String> {
    if group.is_empty() || group.len() > MAX_GROUP_LEN {
        return Err(format!("must be 1 to {MAX_GROUP_LEN} bytes"));
    }
    if group.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r: RateLimit = "20/s".parse().expect("valid");
        assert_eq!((r.count, r.per, r.burst), (20, RatePeriod::Second, 1));
        assert_eq!(r.interval_us(), 50_000);
        assert_eq!(r.to_string(), "20/s");
        let r: RateLimit = "100/m burst 10".parse().expect("valid");
        assert_eq!(r.interval_us(), 600_000);
        assert_eq!(r.to_string(), "100/m burst 10");
        assert_eq!(
            "5/h".parse::<RateLimit>().map(|r| r.per),
            Ok(RatePeriod::Hour)
        );
        for bad in [
            "",
            "20",
            "20/d",
            "x/s",
            "0/s",
            "20/s burst",
            "20/s burst 0",
            "20/s x 2",
            "-1/s",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stricter_limit_wins() {
        let a = FlowLimits {
            rate: "20/s".parse().ok(),
            max_running: Some(5),
            group_max_running: None,
        };
        let b = FlowLimits {
            rate: "10/s burst 4".parse().ok(),
            max_running: Some(3),
            group_max_running: Some(2),
        };
        let s = a.stricter(b);
        assert_eq!(s.rate, b.rate);
        assert_eq!(s.max_running, Some(3));
        assert_eq!(s.group_max_running, Some(2));
        assert_eq!(FlowLimits::default().stricter(a), a);
    }

    #[test]
    fn waits_round_trip_and_groups_are_bounded() {
        for w in [
            FlowWait::Paused,
            FlowWait::Rate,
            FlowWait::MaxRunning,
            FlowWait::GroupMaxRunning,
        ] {
            assert_eq!(FlowWait::parse(w.as_str()), Some(w));
        }
        assert!(check_group("tenant-42").is_ok());
        assert!(check_group("").is_err());
        assert!(check_group("a b").is_err());
        assert!(check_group(&"x".repeat(129)).is_err());
    }
}
