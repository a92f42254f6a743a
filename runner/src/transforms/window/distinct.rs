//! The values `count_distinct` has seen in one window and group: kept exactly while there are at
//! most [`EXACT_UP_TO`] of them, then estimated with a HyperLogLog sketch of 2^14 one-byte
//! registers (16 KiB, a relative standard error of 1.04 / √16384 ≈ 0.81 %), so a window of a
//! busy group does not keep every value of, say, a day of user ids. The estimate depends only on
//! which values were seen, not on their order or on how windows were merged, so a restart that
//! reads the same records gives the same count.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Distinct values kept exactly per window and group; past this, the count is estimated.
pub const EXACT_UP_TO: usize = 100_000;

/// Bits of a value's hash that choose its register.
const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;

/// Distinct values seen: the values themselves, or a sketch of them.
#[derive(Clone, Debug)]
pub enum Distinct {
    /// Every value, while there are at most [`EXACT_UP_TO`].
    Exact(HashSet<Box<str>>),
    /// A HyperLogLog sketch: per register, the largest rank seen.
    Sketch(Box<[u8]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(HashSet::new())
    }
}

impl Distinct {
    /// Notes `value`.
    pub fn insert(&mut self, value: &str) {
        match self {
            Distinct::Exact(values) => {
                if !values.contains(value) {
                    values.insert(Box::from(value));
                    if values.len() > EXACT_UP_TO {
                        self.switch_to_sketch();
                    }
                }
            }
            Distinct::Sketch(registers) => observe(registers, value),
        }
    }

    /// Takes in what `other` saw.
    pub fn merge(&mut self, other: Distinct) {
        match (&mut *self, other) {
            (Distinct::Exact(mine), Distinct::Exact(theirs)) => {
                mine.extend(theirs);
                if mine.len() > EXACT_UP_TO {
                    self.switch_to_sketch();
                }
            }
            (Distinct::Sketch(mine), Distinct::Exact(theirs)) => {
                for value in &theirs {
                    observe(mine, value);
                }
            }
            (Distinct::Exact(_), Distinct::Sketch(mut theirs)) => {
                if let Distinct::Exact(mine) = std::mem::take(self) {
                    for value in &mine {
                        observe(&mut theirs, value);
                    }
                }
                *self = Distinct::Sketch(theirs);
            }
            (Distinct::Sketch(mine), Distinct::Sketch(theirs)) => {
                for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                    *m = (*m).max(*t);
                }
            }
        }
    }

    /// How many distinct values: exact, or the sketch's estimate rounded.
    pub fn count(&self) -> u64 {
        match self {
            Distinct::Exact(values) => values.len() as u64,
            Distinct::Sketch(registers) => estimate(registers),
        }
    }

    fn switch_to_sketch(&mut self) {
        let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
        if let Distinct::Exact(values) = self {
            for value in values.iter() {
                observe(&mut registers, value);
            }
        }
        *self = Distinct::Sketch(registers);
    }
}

/// Notes `value` in a sketch: its hash's first bits choose a register, which keeps the largest
/// rank (position of the first set bit of the rest) seen.
fn observe(registers: &mut [u8], value: &str) {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    let hash = hasher.finish();
    let register = (hash >> (64 - PRECISION)) as usize;
    let rest = hash << PRECISION;
    let rank = (rest.leading_zeros().min(64 - PRECISION) + 1) as u8;
    if registers[register] < rank {
        registers[register] = rank;
    }
}

/// The HyperLogLog estimate of a sketch (Flajolet et al., 2007), with linear counting while
/// registers are still empty and the estimate small.
fn estimate(registers: &[u8]) -> u64 {
    let m = registers.len() as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
    let raw = alpha * m * m / sum;
    let empty = registers.iter().filter(|&&r| r == 0).count();
    let estimate = if raw <= 2.5 * m && empty > 0 {
        m * (m / empty as f64).ln()
    } else {
        raw
    };
    estimate.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(values: impl Iterator<Item = String>) -> Distinct {
        let mut d = Distinct::default();
        for v in values {
            d.insert(&v);
        }
        d
    }

    #[test]
    fn exact_up_to_the_bound_then_within_three_standard_errors() {
        let small = fed((0..EXACT_UP_TO).map(|i| format!("user{i}")));
        assert!(matches!(small, Distinct::Exact(_)));
        assert_eq!(small.count(), EXACT_UP_TO as u64);
        for n in [EXACT_UP_TO + 1, 250_000, 1_000_000] {
            // The first 50,000 values twice: repeats do not count.
            let d = fed((0..n + 50_000).map(|i| format!("user{}", i % n)));
            assert!(matches!(d, Distinct::Sketch(_)));
            let error = (d.count() as f64 - n as f64).abs() / n as f64;
            assert!(error < 3.0 * 0.0081, "{n} values estimated {}", d.count());
        }
    }

    /// Merging (two session windows becoming one) gives what feeding one with everything gives,
    /// in every pairing of exact and sketched sides.
    #[test]
    fn merged_equals_fed_with_everything() {
        for (a, b) in [
            (10, 20),
            (10, EXACT_UP_TO + 5),
            (EXACT_UP_TO + 5, 10),
            (EXACT_UP_TO + 5, EXACT_UP_TO + 9),
        ] {
            let left = || (0..a).map(|i| format!("v{i}"));
            let right = || (0..b).map(|i| format!("v{}", i + a / 2));
            let mut merged = fed(left());
            merged.merge(fed(right()));
            let whole = fed(left().chain(right()));
            assert_eq!(merged.count(), whole.count(), "{a} and {b} values");
        }
    }
}
