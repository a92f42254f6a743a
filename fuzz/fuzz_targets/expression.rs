//! The expression language of `where` and `compute`: any text as an expression (parsed, checked,
//! bound and evaluated on a few records whose fields are numbers as text, other text, empty and
//! missing). Nothing may panic: a mistake is an error at a place, a failing record an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use weir::expr::Expression;
use weir::record::{BatchBuilder, FieldRef, Schema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expression = match Expression::parse(text) {
        Ok(expression) => expression,
        Err(e) => {
            // The place is inside the text, on character boundaries.
            assert!(e.span.start <= e.span.end && e.span.end <= text.len(), "{e:?}");
            assert!(text.is_char_boundary(e.span.start) && text.is_char_boundary(e.span.end));
            return;
        }
    };
    let schema = Arc::new(Schema::new(["a", "b", "c"]));
    let mut builder = BatchBuilder::with_capacity(Arc::clone(&schema), 4);
    for (row, time) in [
        (["4", "x", "-9223372036854775808"], 0),
        (["", "2.5", "9223372036854775807"], i64::MAX),
        (["0", "1e308", "省"], i64::MIN),
    ] {
        for value in row {
            builder.push_str(value);
        }
        builder.end_row(time);
    }
    builder.push(FieldRef::Null);
    builder.push(FieldRef::Int(i64::MIN));
    builder.push(FieldRef::Float(f64::NAN));
    builder.end_row(-1);
    let batch = builder.build();
    let bound = expression.bind(&schema);
    for row in batch.rows() {
        if let Err(e) = bound.eval(&row) {
            assert!(e.span.end <= text.len(), "{e:?}");
        }
        let _ = bound.holds(&row, &expression.span());
    }
});
