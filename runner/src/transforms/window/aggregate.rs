//! Aggregate functions of the window transform and their running state.

use super::distinct::Distinct;
use crate::record::{FieldRef, Number};
use serde::Deserialize;

/// An aggregate function.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AggregateOp {
    /// Number of rows (or, with a field, of rows where it is not empty).
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value of a numeric field.
    Min,
    /// Largest value of a numeric field.
    Max,
    /// Mean of a numeric field.
    Avg,
    /// Number of distinct non-empty values of a field: exact up to `distinct::EXACT_UP_TO` values
    /// per window and group, estimated past that (see `distinct`).
    #[serde(rename = "count_distinct")]
    CountDistinct,
}

impl AggregateOp {
    /// The name used in output field names and docs.
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Count => "count",
            AggregateOp::Sum => "sum",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Avg => "avg",
            AggregateOp::CountDistinct => "count_distinct",
        }
    }
}

/// Running state of one aggregate for one group in one window.
#[derive(Clone, Debug)]
pub struct Accumulator {
    count: u64,
    numeric: u64,
    int_sum: i64,
    all_int: bool,
    float_sum: f64,
    min: Option<Number>,
    max: Option<Number>,
    /// `count_distinct`: the values seen. Boxed on purpose: one pointer in every accumulator of
    /// every window and group (most never hold a set) instead of a 48-byte set.
    distinct: Option<Box<Distinct>>,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            count: 0,
            numeric: 0,
            int_sum: 0,
            all_int: true,
            float_sum: 0.0,
            min: None,
            max: None,
            distinct: None,
        }
    }
}

/// What one value contributed: whether a numeric aggregate had to skip it as non-numeric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fed {
    /// Used.
    Used,
    /// Not a number; left out of sum/min/max/avg.
    NotNumeric,
}

impl Accumulator {
    /// Adds one row for `op`; `value` is the aggregated field (`None` for a plain count).
    pub fn feed(&mut self, op: AggregateOp, value: Option<FieldRef<'_>>) -> Fed {
        if op == AggregateOp::CountDistinct {
            let seen = self.distinct.get_or_insert_with(Box::default);
            match value {
                None | Some(FieldRef::Null) => {}
                Some(FieldRef::Str("")) => {}
                Some(FieldRef::Str(s)) => seen.insert(s),
                Some(other) => {
                    let mut text = String::new();
                    other.write_text(&mut text);
                    seen.insert(&text);
                }
            }
            return Fed::Used;
        }
        if op == AggregateOp::Count {
            let present = match value {
                None => true,
                Some(FieldRef::Null) => false,
                Some(FieldRef::Str(s)) => !s.is_empty(),
                Some(_) => true,
            };
            self.count += u64::from(present);
            return Fed::Used;
        }
        let Some(number) = value.and_then(|v| v.as_number()) else {
            return Fed::NotNumeric;
        };
        self.numeric += 1;
        self.float_sum += number.as_f64();
        match number {
            Number::Int(i) if self.all_int => match self.int_sum.checked_add(i) {
                Some(sum) => self.int_sum = sum,
                None => self.all_int = false,
            },
            _ => self.all_int = false,
        }
        if self.min.is_none_or(|m| number.as_f64() < m.as_f64()) {
            self.min = Some(number);
        }
        if self.max.is_none_or(|m| number.as_f64() > m.as_f64()) {
            self.max = Some(number);
        }
        Fed::Used
    }

    /// Takes in everything `other` saw (two session windows becoming one).
    pub fn merge(&mut self, other: Accumulator) {
        self.count += other.count;
        self.numeric += other.numeric;
        match self.int_sum.checked_add(other.int_sum) {
            Some(sum) if self.all_int && other.all_int => self.int_sum = sum,
            _ => self.all_int = false,
        }
        self.float_sum += other.float_sum;
        if let Some(m) = other.min
            && self.min.is_none_or(|mine| m.as_f64() < mine.as_f64())
        {
            self.min = Some(m);
        }
        if let Some(m) = other.max
            && self.max.is_none_or(|mine| m.as_f64() > mine.as_f64())
        {
            self.max = Some(m);
        }
        match (&mut self.distinct, other.distinct) {
            (Some(mine), Some(theirs)) => mine.merge(*theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// The aggregate's value; null when no numeric value was seen.
    pub fn result(&self, op: AggregateOp) -> FieldRef<'static> {
        let number = |n: Option<Number>| match n {
            Some(Number::Int(i)) => FieldRef::Int(i),
            Some(Number::Float(f)) => FieldRef::Float(f),
            None => FieldRef::Null,
        };
        match op {
            AggregateOp::Count => FieldRef::Int(self.count as i64),
            AggregateOp::CountDistinct => {
                FieldRef::Int(self.distinct.as_ref().map_or(0, |seen| seen.count()) as i64)
            }
            _ if self.numeric == 0 => FieldRef::Null,
            AggregateOp::Sum if self.all_int => FieldRef::Int(self.int_sum),
            AggregateOp::Sum => FieldRef::Float(self.float_sum),
            AggregateOp::Min => number(self.min),
            AggregateOp::Max => number(self.max),
            AggregateOp::Avg => FieldRef::Float(self.float_sum / self.numeric as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: AggregateOp, values: &[FieldRef<'_>]) -> FieldRef<'static> {
        let mut acc = Accumulator::default();
        for v in values {
            acc.feed(op, Some(*v));
        }
        acc.result(op)
    }

    #[test]
    fn integer_inputs_give_integer_results() {
        let v = [FieldRef::Str("3"), FieldRef::Str("1"), FieldRef::Int(5)];
        assert_eq!(run(AggregateOp::Sum, &v), FieldRef::Int(9));
        assert_eq!(run(AggregateOp::Min, &v), FieldRef::Int(1));
        assert_eq!(run(AggregateOp::Max, &v), FieldRef::Int(5));
        assert_eq!(run(AggregateOp::Avg, &v), FieldRef::Float(3.0));
        assert_eq!(run(AggregateOp::Count, &v), FieldRef::Int(3));
    }

    /// Feeding two accumulators and merging them gives what feeding one with everything gives.
    #[test]
    fn merged_accumulators_equal_one_fed_with_everything() {
        let values = [
            FieldRef::Str("3"),
            FieldRef::Str("x"),
            FieldRef::Int(-2),
            FieldRef::Float(2.5),
            FieldRef::Str(""),
            FieldRef::Str("3"),
        ];
        for op in [
            AggregateOp::Count,
            AggregateOp::Sum,
            AggregateOp::Min,
            AggregateOp::Max,
            AggregateOp::Avg,
            AggregateOp::CountDistinct,
        ] {
            for cut in 0..=values.len() {
                let mut left = Accumulator::default();
                let mut right = Accumulator::default();
                for v in &values[..cut] {
                    left.feed(op, Some(*v));
                }
                for v in &values[cut..] {
                    right.feed(op, Some(*v));
                }
                left.merge(right);
                assert_eq!(left.result(op), run(op, &values), "{op:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn count_distinct_counts_each_non_empty_value_once() {
        let v = [
            FieldRef::Str("u1"),
            FieldRef::Str("u2"),
            FieldRef::Str("u1"),
            FieldRef::Str(""),
            FieldRef::Null,
            FieldRef::Int(7),
            FieldRef::Str("7"),
        ];
        assert_eq!(run(AggregateOp::CountDistinct, &v), FieldRef::Int(3));
        assert_eq!(run(AggregateOp::CountDistinct, &[]), FieldRef::Int(0));
    }

    #[test]
    fn floats_overflow_and_non_numbers() {
        assert_eq!(
            run(AggregateOp::Sum, &[FieldRef::Str("1.5"), FieldRef::Int(1)]),
            FieldRef::Float(2.5)
        );
        assert_eq!(
            run(
                AggregateOp::Sum,
                &[FieldRef::Int(i64::MAX), FieldRef::Int(1)]
            ),
            FieldRef::Float(i64::MAX as f64 + 1.0)
        );
        let mut acc = Accumulator::default();
        assert_eq!(
            acc.feed(AggregateOp::Sum, Some(FieldRef::Str(""))),
            Fed::NotNumeric
        );
        assert_eq!(acc.result(AggregateOp::Sum), FieldRef::Null);
        assert_eq!(
            run(
                AggregateOp::Count,
                &[FieldRef::Str(""), FieldRef::Str("x"), FieldRef::Null]
            ),
            FieldRef::Int(1)
        );
    }
}
