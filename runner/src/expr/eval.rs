//! Evaluating an expression on records: the checked tree is bound once per input schema (field
//! names become positions, constant regexes are compiled, functions are looked up), and the bound
//! form is walked per row without allocating for fields, numbers and comparisons.
//!
//! Values are CEL's scalars: null, bool, int (i64), double, string. Fields read from text (CSV
//! columns, JSON strings) are strings; where an operator needs a number and gets a string that
//! holds one (`age_range >= 4`, `price * 2`), it uses that number. `+` of two strings joins them.
//! Null (a missing field, or a null value) follows SQL's three-valued logic: comparisons and
//! arithmetic with null give null, `null && false` is false, `null || true` is true, `!null` is
//! null, `x == null` is true only for null, and a `?:` whose condition is null takes the else
//! branch. Everything else that does not fit (a string that is no number, a division by zero,
//! `'a' < 1`) is an error for that record.

use super::functions::{Function, call, function, text_of};
use super::syntax::{BinaryOp, ExprError, Kind, Node, Span, UnaryOp};
use super::value::{EvalError, Number, Outcome, Value, field_value};
use crate::record::{Row, Schema};
use std::borrow::Cow;
use std::cmp::Ordering;

/// An expression bound to one input schema, ready to evaluate on its rows.
#[derive(Debug)]
pub struct Bound {
    root: Op,
}

#[derive(Debug)]
enum Op {
    Const(Value<'static>),
    Field(Option<usize>),
    Not(Box<Op>, Span),
    Negate(Box<Op>, Span),
    And(Box<Op>, Box<Op>, Span),
    Or(Box<Op>, Box<Op>, Span),
    Compare(BinaryOp, Box<Op>, Box<Op>, Span),
    Arithmetic(BinaryOp, Box<Op>, Box<Op>, Span),
    In(Box<Op>, Vec<Op>),
    Conditional(Box<Op>, Box<Op>, Box<Op>, Span),
    Call(Function, Vec<Op>, Span),
    MatchesConst(Box<Op>, regex::Regex),
}

/// Binds a checked tree to `schema`.
pub(super) fn bind(node: &Node, schema: &Schema) -> Result<Bound, ExprError> {
    Ok(Bound {
        root: bind_node(node, schema)?,
    })
}

fn bind_node(node: &Node, schema: &Schema) -> Result<Op, ExprError> {
    let bind_box = |n: &Node| bind_node(n, schema).map(Box::new);
    let span = node.span.clone();
    Ok(match &node.kind {
        Kind::Null => Op::Const(Value::Null),
        Kind::Bool(b) => Op::Const(Value::Bool(*b)),
        Kind::Int(i) => Op::Const(Value::Int(*i)),
        Kind::Double(d) => Op::Const(Value::Double(*d)),
        Kind::Str(s) => Op::Const(Value::Str(Cow::Owned(s.clone()))),
        Kind::List(_) => {
            return Err(ExprError::new(
                span,
                "a list can only follow `in`".to_string(),
            ));
        }
        Kind::Field(name) => Op::Field(schema.index_of(name)),
        Kind::Unary(UnaryOp::Not, x) => Op::Not(bind_box(x)?, span),
        Kind::Unary(UnaryOp::Negate, x) => Op::Negate(bind_box(x)?, span),
        Kind::Binary(BinaryOp::And, a, b) => Op::And(bind_box(a)?, bind_box(b)?, span),
        Kind::Binary(BinaryOp::Or, a, b) => Op::Or(bind_box(a)?, bind_box(b)?, span),
        Kind::Binary(BinaryOp::In, x, list) => {
            let Kind::List(items) = &list.kind else {
                return Err(ExprError::new(
                    list.span.clone(),
                    "`in` needs a list, e.g. `x in ['1', '2']`".to_string(),
                ));
            };
            let items = items
                .iter()
                .map(|item| bind_node(item, schema))
                .collect::<Result<_, _>>()?;
            Op::In(bind_box(x)?, items)
        }
        Kind::Binary(
            op @ (BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge),
            a,
            b,
        ) => Op::Compare(*op, bind_box(a)?, bind_box(b)?, span),
        Kind::Binary(op, a, b) => Op::Arithmetic(*op, bind_box(a)?, bind_box(b)?, span),
        Kind::Conditional(c, a, b) => {
            Op::Conditional(bind_box(c)?, bind_box(a)?, bind_box(b)?, span)
        }
        Kind::Call { target, name, args } => {
            let function = function(name, target.is_some(), args.len())
                .map_err(|message| ExprError::new(span.clone(), message))?;
            let mut all: Vec<&Node> = target.iter().map(|t| t.as_ref()).collect();
            all.extend(args);
            if function == Function::Has && !matches!(all[0].kind, Kind::Field(_)) {
                return Err(ExprError::new(
                    all[0].span.clone(),
                    "`has` takes a field, e.g. `has(brand_id)`".to_string(),
                ));
            }
            if function == Function::Matches
                && let Kind::Str(pattern) = &all[1].kind
            {
                let regex = regex::Regex::new(pattern).map_err(|e| {
                    ExprError::new(
                        all[1].span.clone(),
                        format!("not a regular expression: {e}"),
                    )
                })?;
                return Ok(Op::MatchesConst(bind_box(all[0])?, regex));
            }
            let ops = all
                .into_iter()
                .map(|n| bind_node(n, schema))
                .collect::<Result<_, _>>()?;
            Op::Call(function, ops, span)
        }
    })
}

impl Bound {
    /// The expression's value for `row`.
    pub fn eval<'r>(&'r self, row: &Row<'r>) -> Outcome<'r> {
        eval(&self.root, row)
    }

    /// Whether the expression holds for `row`: true keeps it; false and null do not; any other
    /// value is an error.
    pub fn holds(&self, row: &Row<'_>, whole: &Span) -> Result<bool, EvalError> {
        match self.eval(row)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(EvalError::new(
                whole,
                format!("the condition gave {}, not true or false", other.shown()),
            )),
        }
    }
}

fn eval<'r>(op: &'r Op, row: &Row<'r>) -> Outcome<'r> {
    match op {
        Op::Const(v) => Ok(borrow(v)),
        Op::Field(Some(i)) => Ok(field_value(row.get(*i))),
        Op::Field(None) => Ok(Value::Null),
        Op::Not(x, span) => match eval(x, row)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            Value::Null => Ok(Value::Null),
            other => Err(EvalError::new(
                span,
                format!("`!` needs true or false, found {}", other.shown()),
            )),
        },
        Op::Negate(x, span) => match eval(x, row)? {
            Value::Null => Ok(Value::Null),
            v => match v.number() {
                Some(Number::Int(i)) => i
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(|| EvalError::new(span, "the negation overflows".into())),
                Some(Number::Double(d)) => Ok(Value::Double(-d)),
                None => Err(EvalError::new(
                    span,
                    format!("`-` needs a number, found {}", v.shown()),
                )),
            },
        },
        Op::And(a, b, span) => logic(a, b, row, false, span),
        Op::Or(a, b, span) => logic(a, b, row, true, span),
        Op::Compare(op, a, b, span) => compare(*op, &eval(a, row)?, &eval(b, row)?, span),
        Op::Arithmetic(op, a, b, span) => arithmetic(*op, eval(a, row)?, eval(b, row)?, span),
        Op::In(x, items) => {
            let x = eval(x, row)?;
            for item in items {
                if equal(&x, &eval(item, row)?) {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Op::Conditional(c, a, b, span) => match eval(c, row)? {
            Value::Bool(true) => eval(a, row),
            Value::Bool(false) | Value::Null => eval(b, row),
            other => Err(EvalError::new(
                span,
                format!(
                    "`?:` needs a true or false condition, found {}",
                    other.shown()
                ),
            )),
        },
        Op::MatchesConst(x, regex) => match eval(x, row)? {
            Value::Null => Ok(Value::Null),
            Value::Str(s) => Ok(Value::Bool(regex.is_match(&s))),
            other => Ok(Value::Bool(regex.is_match(&text_of(&other)))),
        },
        Op::Call(function, args, span) => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(eval(arg, row)?);
            }
            call(*function, values, row.event_time(), span)
        }
    }
}

fn borrow<'r>(v: &'r Value<'static>) -> Value<'r> {
    match v {
        Value::Str(s) => Value::Str(Cow::Borrowed(s.as_ref())),
        Value::Null => Value::Null,
        Value::Bool(b) => Value::Bool(*b),
        Value::Int(i) => Value::Int(*i),
        Value::Double(d) => Value::Double(*d),
    }
}

/// `&&` (`short` = false) and `||` (`short` = true) in three-valued logic.
fn logic<'r>(a: &'r Op, b: &'r Op, row: &Row<'r>, short: bool, span: &Span) -> Outcome<'r> {
    let symbol = if short { "||" } else { "&&" };
    let truth = |v: Value<'_>| match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(EvalError::new(
            span,
            format!("`{symbol}` needs true or false, found {}", other.shown()),
        )),
    };
    let left = truth(eval(a, row)?)?;
    if left == Some(short) {
        return Ok(Value::Bool(short));
    }
    let right = truth(eval(b, row)?)?;
    Ok(match (left, right) {
        (_, Some(r)) if r == short => Value::Bool(short),
        (Some(_), Some(_)) => Value::Bool(!short),
        _ => Value::Null,
    })
}

fn equal(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(_), _) | (_, Value::Bool(_)) => false,
        _ => match (a.number(), b.number()) {
            (Some(Number::Int(x)), Some(Number::Int(y))) => x == y,
            (Some(x), Some(y)) => x.as_f64() == y.as_f64(),
            _ => false,
        },
    }
}

fn compare<'r>(op: BinaryOp, a: &Value<'_>, b: &Value<'_>, span: &Span) -> Outcome<'r> {
    match op {
        BinaryOp::Eq => return Ok(Value::Bool(equal(a, b))),
        BinaryOp::Ne => return Ok(Value::Bool(!equal(a, b))),
        _ => {}
    }
    let ordering = match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(Value::Null),
        (Value::Str(x), Value::Str(y)) => x.as_ref().cmp(y.as_ref()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => match (a.number(), b.number()) {
            (Some(Number::Int(x)), Some(Number::Int(y))) => x.cmp(&y),
            (Some(x), Some(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .ok_or_else(|| EvalError::new(span, "cannot order NaN".into()))?,
            _ => {
                return Err(EvalError::new(
                    span,
                    format!(
                        "cannot compare {} ({}) with {} ({}) by `{}`",
                        a.shown(),
                        a.type_name(),
                        b.shown(),
                        b.type_name(),
                        op.symbol()
                    ),
                ));
            }
        },
    };
    Ok(Value::Bool(match op {
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::Le => ordering != Ordering::Greater,
        BinaryOp::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    }))
}

fn arithmetic<'r>(op: BinaryOp, a: Value<'r>, b: Value<'r>, span: &Span) -> Outcome<'r> {
    if matches!(a, Value::Null) || matches!(b, Value::Null) {
        return Ok(Value::Null);
    }
    if let (BinaryOp::Add, Value::Str(x), Value::Str(y)) = (op, &a, &b) {
        return Ok(Value::Str(Cow::Owned(format!("{x}{y}"))));
    }
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        return Err(EvalError::new(
            span,
            format!(
                "`{}` needs numbers, found {} and {}",
                op.symbol(),
                a.shown(),
                b.shown()
            ),
        ));
    };
    let overflow = || EvalError::new(span, format!("`{}` overflows", op.symbol()));
    match (x, y) {
        (Number::Int(x), Number::Int(y)) => {
            let result = match op {
                BinaryOp::Add => x.checked_add(y),
                BinaryOp::Sub => x.checked_sub(y),
                BinaryOp::Mul => x.checked_mul(y),
                BinaryOp::Div | BinaryOp::Rem if y == 0 => {
                    return Err(EvalError::new(span, "division by zero".into()));
                }
                BinaryOp::Div => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            result.map(Value::Int).ok_or_else(overflow)
        }
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            Ok(Value::Double(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                _ => {
                    return Err(EvalError::new(span, "`%` needs two ints".into()));
                }
            }))
        }
    }
}
