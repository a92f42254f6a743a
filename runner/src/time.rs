//! Time values in configs: durations like `"1s"` or `"250ms"`, and points in time given as epoch
//! milliseconds or RFC 3339 text.

use crate::record::Millis;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration written as text with a unit: `"1s"`, `"500ms"`, `"2m"`, `"1h 30m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// Whole milliseconds.
    pub fn as_millis(self) -> Millis {
        self.0.as_millis().min(i64::MAX as u128) as Millis
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"1s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationSpec, E> {
                if s.trim().starts_with('-') {
                    return Err(E::custom(format!(
                        "invalid duration \"{s}\": a duration cannot be negative"
                    )));
                }
                humantime::parse_duration(s.trim())
                    .map(DurationSpec)
                    .map_err(|e| {
                        E::custom(format!(
                            "invalid duration \"{s}\": {e} (write e.g. \"1s\", \"500ms\", \"2m\")"
                        ))
                    })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationSpec, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{v}s\" or \"{v}ms\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationSpec, E> {
                self.visit_i64(v as i64)
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time: integer milliseconds since the Unix epoch, or RFC 3339 text such as
/// `"2024-11-11T00:00:00Z"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimePoint(pub Millis);

impl<'de> Deserialize<'de> for TimePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimePoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 time like \"2024-11-11T00:00:00Z\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimePoint, E> {
                Ok(TimePoint(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimePoint, E> {
                i64::try_from(v)
                    .map(TimePoint)
                    .map_err(|_| E::custom("time out of range"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TimePoint, E> {
                let t = humantime::parse_rfc3339_weak(s.trim()).map_err(|e| {
                    E::custom(format!(
                        "invalid time \"{s}\": {e} (write e.g. \"2024-11-11T00:00:00Z\")"
                    ))
                })?;
                Ok(TimePoint(system_time_millis(t)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Milliseconds since the epoch of `t` (negative before 1970).
pub fn system_time_millis(t: SystemTime) -> Millis {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Millis,
        Err(e) => -(e.duration().as_millis() as Millis),
    }
}

thread_local! {
    /// The time `weir test` says it is on this thread, if it says so.
    static VIRTUAL_NOW: std::cell::Cell<Option<Millis>> = const { std::cell::Cell::new(None) };
}

/// The wall clock now, in epoch milliseconds; on a thread where [`VirtualClock`] is set (`weir
/// test`), the virtual time instead. Every processing-time decision of the stages reads it.
pub fn now_millis() -> Millis {
    VIRTUAL_NOW
        .with(std::cell::Cell::get)
        .unwrap_or_else(|| system_time_millis(SystemTime::now()))
}

/// A virtual clock for the current thread: while it lives, [`now_millis`] on this thread says
/// what [`set`](VirtualClock::set) last set; dropping it gives the thread back the wall clock.
pub struct VirtualClock(());

impl VirtualClock {
    /// Starts virtual time at `now` on this thread.
    pub fn start(now: Millis) -> VirtualClock {
        VIRTUAL_NOW.with(|v| v.set(Some(now)));
        VirtualClock(())
    }

    /// Moves virtual time to `now`.
    pub fn set(&self, now: Millis) {
        VIRTUAL_NOW.with(|v| v.set(Some(now)));
    }
}

impl Drop for VirtualClock {
    fn drop(&mut self) {
        VIRTUAL_NOW.with(|v| v.set(None));
    }
}

/// The default for `future_tolerance`: an event time more than an hour past the wall clock is not
/// believed.
pub const DEFAULT_FUTURE_TOLERANCE: Duration = Duration::from_secs(3600);

/// The latest believable event time now: the wall clock plus `tolerance` (saturating). A record
/// stamped later (a producer's clock years ahead, a garbled timestamp field) would drag the
/// watermark into the future, close every window and make all later records late, so sources
/// drop it and count it instead.
pub fn future_limit(tolerance: Duration) -> Millis {
    now_millis().saturating_add(i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_future_limit_is_the_clock_plus_the_tolerance_and_saturates() {
        let before = now_millis();
        let limit = future_limit(Duration::from_secs(3600));
        assert!(limit >= before + 3_600_000 && limit <= now_millis() + 3_600_000);
        assert_eq!(future_limit(Duration::MAX), i64::MAX);
    }

    use super::*;

    fn duration(text: &str) -> Result<DurationSpec, String> {
        let node = crate::config::parse_document_for_tests(&format!("d = {text}"));
        #[derive(Deserialize)]
        struct W {
            d: DurationSpec,
        }
        crate::config::de::from_node::<W>(&node, "")
            .map(|w| w.d)
            .map_err(|e| e[0].message.clone())
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(duration("\"1s\"").unwrap().as_millis(), 1000);
        assert_eq!(duration("\"250ms\"").unwrap().as_millis(), 250);
        assert_eq!(duration("\"1m 30s\"").unwrap().as_millis(), 90_000);
        assert!(duration("5").unwrap_err().contains("needs a unit"));
        assert!(
            duration("\"fast\"")
                .unwrap_err()
                .contains("invalid duration \"fast\"")
        );
    }

    #[test]
    fn instants_from_millis_or_rfc3339() {
        let node = crate::config::parse_document_for_tests(
            "a = 1700000000000\nb = \"2023-11-14T22:13:20Z\"",
        );
        #[derive(Deserialize)]
        struct W {
            a: TimePoint,
            b: TimePoint,
        }
        let w: W = crate::config::de::from_node(&node, "").unwrap();
        assert_eq!(w.a, TimePoint(1_700_000_000_000));
        assert_eq!(w.b, TimePoint(1_700_000_000_000));
    }
}
