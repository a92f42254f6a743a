//! The functions expressions call: their names and arities (checked when an expression is
//! parsed), and what each computes — conversions, string tests, presence, and the calendar
//! fields of an event time (UTC, from milliseconds since the epoch).

use super::syntax::Span;
use super::value::{EvalError, Number, Outcome, Value};
use crate::record::Millis;
use std::borrow::Cow;

/// The functions an expression can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `size(x)`, `x.size()`: characters of a string.
    Size,
    /// `int(x)`.
    Int,
    /// `double(x)`.
    Double,
    /// `string(x)`.
    String,
    /// `has(field)`: the field is present and not null.
    Has,
    /// `x.startsWith(s)`.
    StartsWith,
    /// `x.endsWith(s)`.
    EndsWith,
    /// `x.contains(s)`.
    Contains,
    /// `x.matches(regex)`, `matches(x, regex)`.
    Matches,
    /// `x.lowerAscii()`.
    Lower,
    /// `x.upperAscii()`.
    Upper,
    /// `x.trim()`.
    Trim,
    /// `event_time()`: the record's event time, milliseconds since the epoch.
    EventTime,
    /// `year(t)`, UTC; `t` defaults to the event time.
    Year,
    /// `month(t)`, 1–12.
    Month,
    /// `day(t)`, day of the month, 1–31.
    Day,
    /// `weekday(t)`, 0 = Sunday.
    Weekday,
    /// `hour(t)`, 0–23.
    Hour,
    /// `minute(t)`, 0–59.
    Minute,
}

/// Every function: name, whether it is called as a method, and how many arguments (besides the
/// receiver) it takes, at least and at most.
const FUNCTIONS: &[(&str, Function, bool, usize, usize)] = &[
    ("size", Function::Size, false, 1, 1),
    ("size", Function::Size, true, 0, 0),
    ("int", Function::Int, false, 1, 1),
    ("double", Function::Double, false, 1, 1),
    ("string", Function::String, false, 1, 1),
    ("has", Function::Has, false, 1, 1),
    ("startsWith", Function::StartsWith, true, 1, 1),
    ("endsWith", Function::EndsWith, true, 1, 1),
    ("contains", Function::Contains, true, 1, 1),
    ("matches", Function::Matches, true, 1, 1),
    ("matches", Function::Matches, false, 2, 2),
    ("lowerAscii", Function::Lower, true, 0, 0),
    ("upperAscii", Function::Upper, true, 0, 0),
    ("trim", Function::Trim, true, 0, 0),
    ("event_time", Function::EventTime, false, 0, 0),
    ("year", Function::Year, false, 0, 1),
    ("month", Function::Month, false, 0, 1),
    ("day", Function::Day, false, 0, 1),
    ("weekday", Function::Weekday, false, 0, 1),
    ("hour", Function::Hour, false, 0, 1),
    ("minute", Function::Minute, false, 0, 1),
];

/// The function `name` called with `args` arguments (as a method when `method`), or what is
/// wrong with the call.
pub(super) fn function(name: &str, method: bool, args: usize) -> Result<Function, String> {
    let named: Vec<_> = FUNCTIONS.iter().filter(|f| f.0 == name).collect();
    if named.is_empty() {
        let names = FUNCTIONS.iter().map(|f| f.0);
        let hint = crate::config::did_you_mean(name, names)
            .map(|hint| format!(" ({hint})"))
            .unwrap_or_default();
        return Err(format!("unknown function `{name}`{hint}"));
    }
    if let Some(f) = named
        .iter()
        .find(|f| f.2 == method && (f.3..=f.4).contains(&args))
    {
        return Ok(f.1);
    }
    let (shape, counts) = match named.iter().find(|f| f.2 == method) {
        Some(f) if f.3 == f.4 => ("", f.3.to_string()),
        Some(f) => ("", format!("{} to {}", f.3, f.4)),
        None if method => (" as a method; call it as `{name}(x)`", String::new()),
        None => (
            " alone; call it as a method, `x.{name}(...)`",
            String::new(),
        ),
    };
    if !shape.is_empty() {
        return Err(format!(
            "`{name}` is not called{}",
            shape.replace("{name}", name)
        ));
    }
    Err(format!("`{name}` takes {counts} argument(s), not {args}"))
}

pub(super) fn text_of(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
    }
}

pub(super) fn call<'r>(
    function: Function,
    mut args: Vec<Value<'r>>,
    time: Millis,
    span: &Span,
) -> Outcome<'r> {
    let fail = |message: String| Err(EvalError::new(span, message));
    if function == Function::Has {
        return Ok(Value::Bool(!matches!(args[0], Value::Null)));
    }
    if function == Function::EventTime {
        return Ok(Value::Int(time));
    }
    let clock = matches!(
        function,
        Function::Year
            | Function::Month
            | Function::Day
            | Function::Weekday
            | Function::Hour
            | Function::Minute
    );
    if clock {
        let at = match args.pop() {
            None => time,
            Some(Value::Null) => return Ok(Value::Null),
            Some(v) => match v.number() {
                Some(Number::Int(ms)) => ms,
                _ => {
                    return fail(format!(
                        "a time is an int of milliseconds, not {}",
                        v.shown()
                    ));
                }
            },
        };
        return Ok(Value::Int(clock_field(function, at)));
    }
    let first = args.remove(0);
    if matches!(first, Value::Null) {
        return Ok(Value::Null);
    }
    match function {
        Function::Int => match &first {
            Value::Int(i) => Ok(Value::Int(*i)),
            Value::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Ok(Value::Int(*d as i64)),
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => fail(format!("int({}): not an integer", first.shown())),
            },
            _ => fail(format!(
                "int({}): cannot convert {}",
                first.shown(),
                first.type_name()
            )),
        },
        Function::Double => match first.number() {
            Some(n) => Ok(Value::Double(n.as_f64())),
            None => fail(format!("double({}): not a number", first.shown())),
        },
        Function::String => Ok(Value::Str(Cow::Owned(text_of(&first)))),
        Function::Size => match &first {
            Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
            other => fail(format!("size() of {}", other.type_name())),
        },
        Function::Lower => Ok(Value::Str(Cow::Owned(text_of(&first).to_ascii_lowercase()))),
        Function::Upper => Ok(Value::Str(Cow::Owned(text_of(&first).to_ascii_uppercase()))),
        Function::Trim => Ok(match first {
            Value::Str(Cow::Borrowed(s)) => Value::Str(Cow::Borrowed(s.trim())),
            other => Value::Str(Cow::Owned(text_of(&other).trim().to_string())),
        }),
        Function::StartsWith | Function::EndsWith | Function::Contains | Function::Matches => {
            let second = args.remove(0);
            if matches!(second, Value::Null) {
                return Ok(Value::Null);
            }
            let (text, part) = (text_of(&first), text_of(&second));
            Ok(Value::Bool(match function {
                Function::StartsWith => text.starts_with(&part),
                Function::EndsWith => text.ends_with(&part),
                Function::Contains => text.contains(&part),
                _ => match regex::Regex::new(&part) {
                    Ok(regex) => regex.is_match(&text),
                    Err(e) => return fail(format!("not a regular expression: {e}")),
                },
            }))
        }
        _ => fail(format!("{function:?} is not callable here")),
    }
}

/// A field of the UTC calendar time `ms` (milliseconds since the epoch).
fn clock_field(function: Function, ms: Millis) -> i64 {
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000);
    match function {
        Function::Hour => of_day / 3_600_000,
        Function::Minute => of_day / 60_000 % 60,
        Function::Weekday => (days + 4).rem_euclid(7), // 1970-01-01 was a Thursday
        _ => {
            let (year, month, day) = civil_from_days(days);
            match function {
                Function::Year => year,
                Function::Month => month,
                _ => day,
            }
        }
    }
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (the well-known era algorithm:
/// 400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields_match_known_dates() {
        // 2026-12-07T14:30:00Z, a Monday.
        let ms = 1_796_653_800_000;
        assert_eq!(civil_from_days(ms / 86_400_000), (2026, 12, 7));
        assert_eq!(clock_field(Function::Hour, ms), 14);
        assert_eq!(clock_field(Function::Minute, ms), 30);
        assert_eq!(clock_field(Function::Weekday, ms), 1);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
