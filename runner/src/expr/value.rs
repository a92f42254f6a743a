//! The values expressions compute (CEL's scalars: null, bool, int, double, string), how a
//! record's field reads as one, text that holds a number, and the error of one evaluation.

use super::syntax::Span;
use crate::record::FieldRef;
use std::borrow::Cow;

/// A value an expression computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Text.
    Str(Cow<'a, str>),
}

impl Value<'_> {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Double(_) => "a double",
            Value::Str(_) => "a string",
        }
    }

    pub(super) fn shown(&self) -> String {
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format!("{d:?}"),
        }
    }

    /// The value as a number: ints and doubles, and strings that hold one.
    pub(super) fn number(&self) -> Option<Number> {
        match self {
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Double(d) => Some(Number::Double(*d)),
            Value::Str(s) => parse_number(s),
            _ => None,
        }
    }

    /// The value with its text copied out of the batch it was read from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Double(d) => Value::Double(d),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Number {
    Int(i64),
    Double(f64),
}

impl Number {
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

pub(super) fn parse_number(text: &str) -> Option<Number> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::Int(i));
    }
    text.parse::<f64>()
        .ok()
        .filter(|d| d.is_finite())
        .map(Number::Double)
}

pub(super) fn field_value(field: FieldRef<'_>) -> Value<'_> {
    match field {
        FieldRef::Null => Value::Null,
        FieldRef::Bool(b) => Value::Bool(b),
        FieldRef::Int(i) => Value::Int(i),
        FieldRef::Float(f) => Value::Double(f),
        FieldRef::Str(s) => Value::Str(Cow::Borrowed(s)),
    }
}

/// Why an expression could not be evaluated on one record.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    /// The part of the expression that failed.
    pub span: Span,
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    pub(super) fn new(span: &Span, message: String) -> Self {
        EvalError {
            span: span.clone(),
            message,
        }
    }
}

pub(super) type Outcome<'r> = Result<Value<'r>, EvalError>;
