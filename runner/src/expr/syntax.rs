//! The text of an expression: tokens and the parse into a tree ([`Node`]), each node with the
//! byte span of the text it came from, so an error can point into the expression.
//!
//! The grammar is CEL's (the Common Expression Language), without maps, messages and macros:
//! literals (`null`, `true`, `false`, integers, doubles, strings in single or double quotes,
//! lists), field names, `record['name']`, calls `f(x)` and methods `x.f(y)`, and the operators
//! by precedence, lowest first: `?:`, `||`, `&&`, `== != < <= > >= in`, `+ -`, `* / %`, unary
//! `! -`.

use std::ops::Range;

/// A byte range of the expression text.
pub type Span = Range<usize>;

/// A mistake in an expression's text, at a byte span of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Where in the expression.
    pub span: Span,
    /// What is wrong.
    pub message: String,
}

impl ExprError {
    /// An error at `span`.
    pub fn new(span: Span, message: String) -> Self {
        ExprError { span, message }
    }
}

/// A parsed expression, or part of one.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A double literal.
    Double(f64),
    /// A string literal.
    Str(String),
    /// `[a, b, ...]`.
    List(Vec<Node>),
    /// A field of the record, by name (`age_range`, or `record['age range']`).
    Field(String),
    /// `!x` or `-x`.
    Unary(UnaryOp, Box<Node>),
    /// `x op y`.
    Binary(BinaryOp, Box<Node>, Box<Node>),
    /// `c ? a : b`.
    Conditional(Box<Node>, Box<Node>, Box<Node>),
    /// `name(args)`, or `target.name(args)` as a method.
    Call {
        /// The receiver of a method call.
        target: Option<Box<Node>>,
        /// The function's name.
        name: String,
        /// The arguments.
        args: Vec<Node>,
    },
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`
    Not,
    /// `-`
    Negate,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    /// How tightly it binds (higher binds tighter).
    fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Int(i64),
    Double(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    End,
}

/// Splits `text` into tokens with their spans.
fn tokens(text: &str) -> Result<Vec<(Token, Span)>, ExprError> {
    const OPERATORS: [&str; 22] = [
        "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", "(",
        ")", "[", "]", ",", ".",
    ];
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if c.is_ascii_digit() {
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            let mut double = false;
            if at + 1 < bytes.len() && bytes[at] == b'.' && bytes[at + 1].is_ascii_digit() {
                double = true;
                at += 1;
                while at < bytes.len() && bytes[at].is_ascii_digit() {
                    at += 1;
                }
            }
            if at < bytes.len() && (bytes[at] == b'e' || bytes[at] == b'E') {
                let mut end = at + 1;
                if end < bytes.len() && (bytes[end] == b'+' || bytes[end] == b'-') {
                    end += 1;
                }
                if end < bytes.len() && bytes[end].is_ascii_digit() {
                    double = true;
                    at = end;
                    while at < bytes.len() && bytes[at].is_ascii_digit() {
                        at += 1;
                    }
                }
            }
            let digits = &text[start..at];
            let token = if double {
                digits.parse().map(Token::Double).ok()
            } else {
                digits.parse().map(Token::Int).ok()
            };
            let token = token.ok_or_else(|| {
                ExprError::new(
                    start..at,
                    format!("`{digits}` is not a number weir can hold"),
                )
            })?;
            out.push((token, start..at));
        } else if c == b'\'' || c == b'"' {
            let (value, end) = string_literal(text, at)?;
            out.push((Token::Str(value), at..end));
            at = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            out.push((Token::Ident(text[start..at].to_string()), start..at));
        } else if let Some(op) = OPERATORS.iter().find(|op| text[at..].starts_with(*op)) {
            out.push((Token::Op(op), at..at + op.len()));
            at += op.len();
        } else if c == b'=' {
            return Err(ExprError::new(
                at..at + 1,
                "unexpected `=` (compare with `==`)".into(),
            ));
        } else {
            let ch = text[at..].chars().next().unwrap_or('?');
            let end = at + ch.len_utf8();
            return Err(ExprError::new(at..end, format!("unexpected `{ch}`")));
        }
    }
    out.push((Token::End, text.len()..text.len()));
    Ok(out)
}

/// The string literal starting at `start` (a quote): its value and the offset after it.
fn string_literal(text: &str, start: usize) -> Result<(String, usize), ExprError> {
    let quote = text.as_bytes()[start] as char;
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((i, ch)) = chars.next() {
        let at = start + 1 + i;
        match ch {
            c if c == quote => return Ok((value, at + 1)),
            '\\' => {
                let (_, escaped) = chars.next().ok_or_else(|| {
                    ExprError::new(start..text.len(), "the string is not closed".to_string())
                })?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    '\\' | '\'' | '"' => escaped,
                    other => {
                        return Err(ExprError::new(
                            at..at + 1 + other.len_utf8(),
                            format!("unknown escape `\\{other}`"),
                        ));
                    }
                });
            }
            c => value.push(c),
        }
    }
    Err(ExprError::new(
        start..text.len(),
        format!("the string is not closed (a `{quote}` is missing)"),
    ))
}

/// Parses `text` into a tree.
pub fn parse(text: &str) -> Result<Node, ExprError> {
    let tokens = tokens(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let node = parser.expression()?;
    match parser.peek() {
        (Token::End, _) => Ok(node),
        (_, span) => Err(ExprError::new(
            span.clone(),
            "expected an operator or the end of the expression".into(),
        )),
    }
}

struct Parser {
    tokens: Vec<(Token, Span)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &(Token, Span) {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> (Token, Span) {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(&self.peek().0, Token::Op(o) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str, what: &str) -> Result<Span, ExprError> {
        let (token, span) = self.next();
        match token {
            Token::Op(o) if o == op => Ok(span),
            _ => Err(ExprError::new(span, format!("expected `{op}` {what}"))),
        }
    }

    /// `or ('?' expression ':' expression)?`
    fn expression(&mut self) -> Result<Node, ExprError> {
        let condition = self.binary(1)?;
        if !self.eat("?") {
            return Ok(condition);
        }
        let then = self.expression()?;
        self.expect(":", "after the `?` branch")?;
        let otherwise = self.expression()?;
        let span = condition.span.start..otherwise.span.end;
        Ok(Node {
            kind: Kind::Conditional(Box::new(condition), Box::new(then), Box::new(otherwise)),
            span,
        })
    }

    /// Binary operators of at least `min` precedence, left to right.
    fn binary(&mut self, min: u8) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        while let Some(op) = self.binary_op().filter(|op| op.precedence() >= min) {
            self.at += 1;
            let right = self.binary(op.precedence() + 1)?;
            let span = left.span.start..right.span.end;
            left = Node {
                kind: Kind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match &self.peek().0 {
            Token::Op("||") => BinaryOp::Or,
            Token::Op("&&") => BinaryOp::And,
            Token::Op("==") => BinaryOp::Eq,
            Token::Op("!=") => BinaryOp::Ne,
            Token::Op("<") => BinaryOp::Lt,
            Token::Op("<=") => BinaryOp::Le,
            Token::Op(">") => BinaryOp::Gt,
            Token::Op(">=") => BinaryOp::Ge,
            Token::Ident(word) if word == "in" => BinaryOp::In,
            Token::Op("+") => BinaryOp::Add,
            Token::Op("-") => BinaryOp::Sub,
            Token::Op("*") => BinaryOp::Mul,
            Token::Op("/") => BinaryOp::Div,
            Token::Op("%") => BinaryOp::Rem,
            _ => return None,
        })
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        let start = self.peek().1.start;
        let op = if self.eat("!") {
            UnaryOp::Not
        } else if self.eat("-") {
            UnaryOp::Negate
        } else {
            return self.postfix();
        };
        let operand = self.unary()?;
        let span = start..operand.span.end;
        // `-9223372036854775808` and `-1.5` are literals, not a negation of one.
        let kind = match (op, &operand.kind) {
            (UnaryOp::Negate, Kind::Int(i)) => Kind::Int(-i),
            (UnaryOp::Negate, Kind::Double(d)) => Kind::Double(-d),
            _ => Kind::Unary(op, Box::new(operand)),
        };
        Ok(Node { kind, span })
    }

    /// A primary followed by `.method(args)` and `[index]` parts.
    fn postfix(&mut self) -> Result<Node, ExprError> {
        let mut node = self.primary()?;
        loop {
            if self.eat(".") {
                let (token, span) = self.next();
                let Token::Ident(name) = token else {
                    return Err(ExprError::new(
                        span,
                        "expected a method name after `.`".into(),
                    ));
                };
                if matches!(&node.kind, Kind::Field(r) if r == "record") && !self.at_op("(") {
                    node = Node {
                        kind: Kind::Field(name),
                        span: node.span.start..span.end,
                    };
                    continue;
                }
                self.expect("(", "to call the method")?;
                let (args, end) = self.arguments()?;
                let start = node.span.start;
                node = Node {
                    kind: Kind::Call {
                        target: Some(Box::new(node)),
                        name,
                        args,
                    },
                    span: start..end,
                };
            } else if self.at_op("[") {
                let open = self.next().1;
                let index = self.expression()?;
                let close = self.expect("]", "to close the index")?;
                match (&node.kind, index.kind) {
                    (Kind::Field(r), Kind::Str(name)) if r == "record" => {
                        node = Node {
                            kind: Kind::Field(name),
                            span: node.span.start..close.end,
                        };
                    }
                    _ => {
                        return Err(ExprError::new(
                            open.start..close.end,
                            "only `record['field name']` can be indexed".into(),
                        ));
                    }
                }
            } else {
                return Ok(node);
            }
        }
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(&self.peek().0, Token::Op(o) if *o == op)
    }

    /// Arguments after an opening `(`, through the closing `)`; returns them and the end.
    fn arguments(&mut self) -> Result<(Vec<Node>, usize), ExprError> {
        let mut args = Vec::new();
        if !self.at_op(")") {
            loop {
                args.push(self.expression()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        let close = self.expect(")", "to close the arguments")?;
        Ok((args, close.end))
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let (token, span) = self.next();
        let kind = match token {
            Token::Int(i) => Kind::Int(i),
            Token::Double(d) => Kind::Double(d),
            Token::Str(s) => Kind::Str(s),
            Token::Ident(word) => match word.as_str() {
                "null" => Kind::Null,
                "true" => Kind::Bool(true),
                "false" => Kind::Bool(false),
                _ if self.at_op("(") => {
                    self.at += 1;
                    let (args, end) = self.arguments()?;
                    return Ok(Node {
                        kind: Kind::Call {
                            target: None,
                            name: word,
                            args,
                        },
                        span: span.start..end,
                    });
                }
                _ => Kind::Field(word),
            },
            Token::Op("(") => {
                let inner = self.expression()?;
                self.expect(")", "to close the parenthesis")?;
                return Ok(inner);
            }
            Token::Op("[") => {
                let mut items = Vec::new();
                if !self.at_op("]") {
                    loop {
                        items.push(self.expression()?);
                        if !self.eat(",") {
                            break;
                        }
                    }
                }
                let close = self.expect("]", "to close the list")?;
                return Ok(Node {
                    kind: Kind::List(items),
                    span: span.start..close.end,
                });
            }
            Token::End => {
                return Err(ExprError::new(span, "the expression ends too early".into()));
            }
            Token::Op(op) => {
                return Err(ExprError::new(
                    span,
                    format!("expected a value, found `{op}`"),
                ));
            }
        };
        Ok(Node { kind, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(node: &Node) -> String {
        match &node.kind {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Double(d) => format!("{d:?}"),
            Kind::Str(s) => format!("'{s}'"),
            Kind::List(items) => format!(
                "[{}]",
                items.iter().map(shape).collect::<Vec<_>>().join(", ")
            ),
            Kind::Field(f) => f.clone(),
            Kind::Unary(UnaryOp::Not, x) => format!("!{}", shape(x)),
            Kind::Unary(UnaryOp::Negate, x) => format!("-{}", shape(x)),
            Kind::Binary(op, a, b) => format!("({} {} {})", shape(a), op.symbol(), shape(b)),
            Kind::Conditional(c, a, b) => format!("({} ? {} : {})", shape(c), shape(a), shape(b)),
            Kind::Call { target, name, args } => {
                let args = args.iter().map(shape).collect::<Vec<_>>().join(", ");
                match target {
                    Some(t) => format!("{}.{name}({args})", shape(t)),
                    None => format!("{name}({args})"),
                }
            }
        }
    }

    #[test]
    fn precedence_and_associativity_follow_cel() {
        for (text, expected) in [
            ("a || b && c", "(a || (b && c))"),
            ("a == 1 && b != 'x'", "((a == 1) && (b != 'x'))"),
            ("1 + 2 * 3 - 4", "((1 + (2 * 3)) - 4)"),
            ("10 - 4 - 3", "((10 - 4) - 3)"),
            ("!a && -b < 3", "(!a && (-b < 3))"),
            ("x in [1, 2] || y", "((x in [1, 2]) || y)"),
            ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
            ("int(age) >= 4", "(int(age) >= 4)"),
            ("s.startsWith('a').size()", "s.startsWith('a').size()"),
            ("record['two words'] == record.x", "(two words == x)"),
            ("-1.5e3 + 2e-1", "(-1500.0 + 0.2)"),
            ("\"it's\" + 'say \\'hi\\''", "('it's' + 'say 'hi'')"),
        ] {
            assert_eq!(shape(&parse(text).unwrap()), expected, "{text}");
        }
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        for (text, span, says) in [
            ("a == ", 5..5, "ends too early"),
            ("a = 1", 2..3, "compare with `==`"),
            ("a == 'open", 5..10, "not closed"),
            ("a # b", 2..3, "unexpected `#`"),
            ("f(a b)", 4..5, "expected `)`"),
            ("x[0]", 1..4, "only `record['field name']`"),
            ("99999999999999999999", 0..20, "not a number"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.span, span, "{text}: {e:?}");
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
    }
}
