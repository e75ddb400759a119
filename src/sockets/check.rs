//! `--assert` for `connscope sockets`: checks such as `CLOSE_WAIT == 0` or `client.TIME_WAIT < 100`
//! on a [`Snapshot`].
//!
//! Keys: a state name alone is the count on both sides (`TIME_WAIT`); `client.STATE`,
//! `server.STATE`, `no_owner.STATE` and `owner_unknown.STATE` count one group; `sockets` is every
//! socket on the port. Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`.

use super::snapshot::Snapshot;
use crate::tcp_state::TcpState;

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
}

/// One parsed check: `KEY OP NUMBER`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub key: String,
    pub op: Op,
    pub value: f64,
}

/// The outcome of one check on a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The check as written.
    pub expr: String,
    /// The key's value in the snapshot.
    pub actual: f64,
    pub held: bool,
}

/// Parses `KEY OP NUMBER` (spaces optional). The grammar is the one of the report `--assert`
/// (`src/assert.rs`, written in parallel): kept in this one function so that `sockets` can switch
/// to that shared parser once it lands, with [`evaluate`] unchanged.
pub fn parse(expr: &str) -> Result<Check, String> {
    // Two-character operators first, so `<=` is not read as `<`.
    const OPS: [(&str, Op); 6] = [("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
    let (at, text, op) = OPS
        .iter()
        .filter_map(|(text, op)| expr.find(text).map(|at| (at, *text, *op)))
        .min_by_key(|(at, text, _)| (*at, usize::MAX - text.len()))
        .ok_or_else(|| format!("--assert `{expr}`: expected KEY OP NUMBER, e.g. `CLOSE_WAIT == 0` (OP: == != < <= > >=)"))?;
    let key = expr[..at].trim();
    let value = expr[at + text.len()..].trim();
    if key.is_empty() {
        return Err(format!("--assert `{expr}`: no key before `{text}`"));
    }
    let value = value.parse::<f64>().map_err(|_| format!("--assert `{expr}`: `{value}` is not a number"))?;
    Ok(Check { key: key.to_string(), op, value })
}

/// Evaluates one `--assert` expression on a snapshot.
pub fn evaluate(expr: &str, snapshot: &Snapshot) -> Result<Outcome, String> {
    let check = parse(expr)?;
    let actual = value_of(&check.key, snapshot).ok_or_else(|| {
        format!("--assert `{expr}`: unknown key `{}`; keys are a state (TIME_WAIT), client.STATE, server.STATE, no_owner.STATE, owner_unknown.STATE and sockets", check.key)
    })?;
    Ok(Outcome { expr: expr.to_string(), actual: f64::from(actual), held: check.op.holds(f64::from(actual), check.value) })
}

/// The count a key names.
fn value_of(key: &str, s: &Snapshot) -> Option<u32> {
    if key == "sockets" {
        return Some(s.sockets);
    }
    let (group, state) = match key.split_once('.') {
        Some((group, state)) => (group, state),
        None => ("states", key),
    };
    let counts = match group {
        "states" => &s.states,
        "client" => &s.client,
        "server" => &s.server,
        "no_owner" => &s.no_owner,
        "owner_unknown" => &s.owner_unknown,
        _ => return None,
    };
    TcpState::from_name(state).map(|st| counts.get(st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::KernelSocket;
    use std::collections::HashMap;

    fn snapshot() -> Snapshot {
        let s = |local: &str, remote: &str, state| KernelSocket {
            local: local.parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            state,
            inode: 0,
            uid: 0,
        };
        let sockets = vec![
            s("127.0.0.1:40001", "127.0.0.1:9000", TcpState::TIME_WAIT),
            s("127.0.0.1:40002", "127.0.0.1:9000", TcpState::TIME_WAIT),
            s("127.0.0.1:9000", "127.0.0.1:40003", TcpState::CLOSE_WAIT),
        ];
        Snapshot::build(9000, 0.0, &sockets, &HashMap::new())
    }

    #[test]
    fn test_parse_reads_two_character_operators_whole() {
        assert_eq!(parse("client.TIME_WAIT<=3"), Ok(Check { key: "client.TIME_WAIT".into(), op: Op::Le, value: 3.0 }));
        assert_eq!(parse(" CLOSE_WAIT != 0 ").map(|c| c.op), Ok(Op::Ne));
        assert!(parse("CLOSE_WAIT 0").is_err());
        assert!(parse("== 0").is_err());
        assert!(parse("CLOSE_WAIT == many").is_err());
    }

    #[test]
    fn test_state_alone_counts_both_sides() {
        let snap = snapshot();
        assert!(evaluate("TIME_WAIT == 2", &snap).expect("eval").held);
        assert!(!evaluate("CLOSE_WAIT == 0", &snap).expect("eval").held);
        assert_eq!(evaluate("CLOSE_WAIT == 0", &snap).expect("eval").actual, 1.0);
    }

    #[test]
    fn test_side_keys_count_one_side() {
        let snap = snapshot();
        assert!(evaluate("client.TIME_WAIT == 2", &snap).expect("eval").held);
        assert!(evaluate("server.TIME_WAIT == 0", &snap).expect("eval").held);
        assert!(evaluate("server.close-wait >= 1", &snap).expect("eval").held);
        assert!(evaluate("no_owner.TIME_WAIT == 2", &snap).expect("eval").held);
        assert!(evaluate("sockets == 3", &snap).expect("eval").held);
    }

    #[test]
    fn test_unknown_key_is_an_error() {
        assert!(evaluate("client.NOPE == 0", &snapshot()).is_err());
        assert!(evaluate("elsewhere.TIME_WAIT == 0", &snapshot()).is_err());
    }
}
