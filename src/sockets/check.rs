//! `--assert` for `connscope sockets`: checks such as `CLOSE_WAIT == 0` or `client.TIME_WAIT < 100`
//! on a [`Snapshot`], through the same parser and evaluator as the report's `--assert`.
//!
//! Keys: a state name alone is the count on both sides (`TIME_WAIT`); `client.STATE`,
//! `server.STATE`, `no_owner.STATE` and `owner_unknown.STATE` count one group; `sockets` is every
//! socket on the port. Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`.

use super::snapshot::{Snapshot, StateCounts};
use crate::tcp::state::ALL_STATES;
use std::collections::BTreeMap;

/// Every key a sockets assertion can name, with its value in `snapshot` (the `crate::assert::Fields`
/// the `--assert` evaluator reads: the kernel's tables sit below it).
pub fn fields(snapshot: &Snapshot) -> BTreeMap<String, f64> {
    let mut fields = BTreeMap::new();
    fields.insert("sockets".to_string(), f64::from(snapshot.sockets));
    let groups: [(&str, &StateCounts); 5] = [
        ("", &snapshot.states),
        ("client.", &snapshot.client),
        ("server.", &snapshot.server),
        ("no_owner.", &snapshot.no_owner),
        ("owner_unknown.", &snapshot.owner_unknown),
    ];
    for (prefix, counts) in groups {
        for state in ALL_STATES {
            fields.insert(format!("{prefix}{}", state.name()), f64::from(counts.get(state)));
        }
    }
    fields
}

/// The keys, for parsing before any snapshot exists (they do not depend on the sockets).
pub fn keys() -> BTreeMap<String, f64> {
    let mut fields = BTreeMap::new();
    fields.insert("sockets".to_string(), 0.0);
    for prefix in ["", "client.", "server.", "no_owner.", "owner_unknown."] {
        for state in ALL_STATES {
            fields.insert(format!("{prefix}{}", state.name()), 0.0);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert::{evaluate_fields, parse_against};
    use crate::sockets::KernelSocket;
    use crate::tcp::state::TcpState;
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

    fn check(expr: &str) -> (bool, f64) {
        let assertion = parse_against(expr, &keys()).expect("valid");
        let outcome = &evaluate_fields(&[assertion], &fields(&snapshot()))[0];
        (outcome.passed, outcome.actual.unwrap_or(f64::NAN))
    }

    #[test]
    fn test_state_alone_counts_both_sides() {
        assert_eq!(check("TIME_WAIT == 2"), (true, 2.0));
        assert_eq!(check("CLOSE_WAIT == 0"), (false, 1.0));
    }

    #[test]
    fn test_side_keys_count_one_side() {
        assert!(check("client.TIME_WAIT == 2").0);
        assert!(check("server.TIME_WAIT == 0").0);
        assert!(check("server.CLOSE_WAIT >= 1").0);
        assert!(check("no_owner.TIME_WAIT == 2").0);
        assert!(check("sockets == 3").0);
    }

    #[test]
    fn test_unknown_key_is_a_usage_error_listing_the_keys() {
        let err = parse_against("client.NOPE == 0", &keys()).unwrap_err().to_string();
        assert!(err.contains("unknown field `client.NOPE`") && err.contains("server.CLOSE_WAIT"), "{err}");
        assert!(parse_against("elsewhere.TIME_WAIT == 0", &keys()).is_err());
    }
}
