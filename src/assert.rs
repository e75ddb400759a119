//! `--assert EXPR`: checks on the report's summary (and on `sockets` snapshots), for scripts and CI.
//!
//! An assertion is `FIELD OP VALUE`: FIELD is any numeric field of the JSON `summary` by its name,
//! dotted for nested ones (`fin_first.client`, `client_states.TIME_WAIT`); OP is one of
//! `== != < <= > >=`; VALUE is a number or another field (`reused_connections == connections`).
//! The valid names come from serialising the summary itself, so every field works without a list
//! kept by hand. Each assertion prints `PASS`/`FAIL` with the actual value; the exit status is 0
//! when all hold, 1 when one fails, 2 for a malformed assertion or an unknown field.

use crate::error::Error;
use crate::report::Summary;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Every operator with its spelling, two-character ones first so `<=` is not read as `<`.
    const ALL: [(&'static str, Op); 6] = [("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }

    fn symbol(self) -> &'static str {
        Op::ALL.iter().find(|(_, op)| *op == self).map(|(s, _)| *s).expect("every op is listed")
    }
}

/// The right-hand side: a number, or another summary field.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Number(f64),
    Field(String),
}

/// One parsed `--assert` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Assertion {
    pub field: String,
    pub op: Op,
    pub value: Operand,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            Operand::Number(n) => number(*n),
            Operand::Field(name) => name.clone(),
        };
        write!(f, "{} {} {}", self.field, self.op.symbol(), value)
    }
}

/// The outcome of one assertion.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub assertion: Assertion,
    pub passed: bool,
    /// `None` when the field is null in this report (a count the capture cannot show, such as HTTP
    /// requests inside TLS): the assertion then fails, whatever its operator.
    pub actual: Option<f64>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{word} {} (actual {})", self.assertion, shown(self.actual))
    }
}

/// A value as printed: `null` when the report has none.
fn shown(value: Option<f64>) -> String {
    value.map_or_else(|| "null".to_string(), number)
}

/// Integers print without a fraction (`1`, not `1.0`).
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Named numbers an assertion can check: dotted JSON names and their values.
pub type Fields = BTreeMap<String, f64>;

/// Every numeric field of a summary by its dotted JSON name, with its value.
pub fn numeric_fields(summary: &Summary) -> Fields {
    let mut fields = BTreeMap::new();
    let value = serde_json::to_value(summary).expect("the summary serialises");
    flatten("", &value, &mut fields);
    fields
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, f64>) {
    match value {
        Value::Number(n) => {
            if let Some(n) = n.as_f64() {
                out.insert(prefix.to_string(), n);
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&name, v, out);
            }
        }
        _ => {}
    }
}

/// Parses `FIELD OP VALUE` against the report summary's fields (taken from an empty summary: the
/// names do not depend on the capture). An error is a usage error that lists the valid names.
pub fn parse(expr: &str) -> Result<Assertion, Error> {
    parse_against(expr, &numeric_fields(&Summary::default()))
}

/// Parses `FIELD OP VALUE` with FIELD (and a field VALUE) among the names of `valid`.
pub fn parse_against(expr: &str, valid: &Fields) -> Result<Assertion, Error> {
    let usage = |why: String| Error::Usage(format!("--assert '{expr}': {why}"));
    let (at, symbol, op) = Op::ALL
        .iter()
        .filter_map(|(s, op)| expr.find(s).map(|at| (at, *s, *op)))
        .min_by_key(|(at, s, _)| (*at, std::cmp::Reverse(s.len())))
        .ok_or_else(|| usage("expected FIELD OP VALUE with OP one of == != < <= > >=, e.g. 'handshakes == 1'".into()))?;
    let field = expr[..at].trim().to_string();
    let right = expr[at + symbol.len()..].trim();
    let check_field = |name: &str| -> Result<(), Error> {
        if valid.contains_key(name) {
            Ok(())
        } else {
            let names: Vec<&str> = valid.keys().map(String::as_str).collect();
            Err(usage(format!("unknown field `{name}`; valid fields: {}", names.join(", "))))
        }
    };
    if field.is_empty() {
        return Err(usage("missing the field before the operator".into()));
    }
    check_field(&field)?;
    let value = if right.is_empty() {
        return Err(usage("missing the value after the operator".into()));
    } else if let Ok(n) = right.parse::<f64>() {
        Operand::Number(n)
    } else {
        check_field(right)?;
        Operand::Field(right.to_string())
    };
    Ok(Assertion { field, op, value })
}

/// Evaluates every assertion against the summary.
pub fn evaluate(assertions: &[Assertion], summary: &Summary) -> Vec<Outcome> {
    evaluate_fields(assertions, &numeric_fields(summary))
}

/// Evaluates every assertion against a set of named numbers. A name missing from `fields` is a
/// field that is null in this report: the assertion fails.
pub fn evaluate_fields(assertions: &[Assertion], fields: &Fields) -> Vec<Outcome> {
    assertions
        .iter()
        .map(|a| {
            let actual = fields.get(&a.field).copied();
            let expected = match &a.value {
                Operand::Number(n) => Some(*n),
                Operand::Field(name) => fields.get(name).copied(),
            };
            let passed = matches!((actual, expected), (Some(l), Some(r)) if a.op.holds(l, r));
            Outcome { assertion: a.clone(), passed, actual }
        })
        .collect()
}

/// Prints one `PASS`/`FAIL` line per outcome to `out`; true when all passed.
pub fn report(outcomes: &[Outcome], summary: &Summary, out: &mut dyn Write) -> std::io::Result<bool> {
    report_fields(outcomes, &numeric_fields(summary), out)
}

/// Prints one `PASS`/`FAIL` line per outcome, field operands shown with their values; true when all passed.
pub fn report_fields(outcomes: &[Outcome], fields: &Fields, out: &mut dyn Write) -> std::io::Result<bool> {
    for o in outcomes {
        match &o.assertion.value {
            Operand::Field(name) => writeln!(out, "{o}, {name} = {}", shown(fields.get(name).copied()))?,
            Operand::Number(_) => writeln!(out, "{o}")?,
        }
    }
    Ok(outcomes.iter().all(|o| o.passed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_reads_two_character_operators_whole() {
        let a = parse("handshakes <= 3").unwrap();
        assert_eq!(a.op, Op::Le);
        assert_eq!(a.value, Operand::Number(3.0));
        assert_eq!(parse("handshakes>=3").unwrap().op, Op::Ge);
        assert_eq!(parse("handshakes!=3").unwrap().op, Op::Ne);
    }

    #[test]
    fn test_parse_accepts_nested_fields_and_field_operands() {
        assert_eq!(parse("client_states.TIME_WAIT < 5").unwrap().field, "client_states.TIME_WAIT");
        assert_eq!(parse("reused_connections == connections").unwrap().value, Operand::Field("connections".into()));
    }

    #[test]
    fn test_parse_rejects_unknown_fields_with_the_list() {
        let err = parse("handshake == 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `handshake`"), "{err}");
        assert!(err.contains("fin_first.client"), "{err}");
    }

    #[test]
    fn test_a_field_the_capture_cannot_show_fails_with_actual_null() {
        // Only TLS traffic: HTTP requests are null, not 0.
        let mut s = Summary::default();
        s.http_requests = None;
        for expr in ["http_requests >= 0", "http_requests != 5", "http_requests == 0"] {
            let out = evaluate(&[parse(expr).unwrap()], &s);
            assert!(!out[0].passed, "{expr}");
            assert_eq!(out[0].to_string(), format!("FAIL {expr} (actual null)"));
        }
    }

    #[test]
    fn test_outcome_prints_integers_without_fraction() {
        let s = Summary::default();
        let out = evaluate(&[parse("connections == 0").unwrap()], &s);
        assert_eq!(out[0].to_string(), "PASS connections == 0 (actual 0)");
    }
}
