//! `connscope sockets` for people: the counts table with owners, and the `--watch` frame that
//! redraws in place. Both only lay out a [`Snapshot`]; nothing is computed here.

use super::snapshot::{Snapshot, StateCounts};
use crate::tcp::state::{TcpState, ALL_STATES};
use crate::wire::Side;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use std::fmt::Write;

/// States shown even at zero: the ones a connection leak or a missing close piles up.
const ALWAYS_SHOWN: [TcpState; 3] = [TcpState::ESTABLISHED, TcpState::TIME_WAIT, TcpState::CLOSE_WAIT];
/// Owners listed before eliding.
const MAX_OWNERS: usize = 10;

/// The one-shot report.
pub fn table(snap: &Snapshot) -> String {
    let mut out = format!(
        "connscope sockets — port {}: {} sockets (server side: local port {}; client side: peer port {})\n",
        snap.port, snap.sockets, snap.port, snap.port
    );
    write_body(&mut out, snap, false);
    out
}

/// One `--watch` frame: cursor home, every line cleared to its end, the rest of the screen cleared,
/// so that writing it in one go redraws in place without flicker. Given the terminal's size
/// (columns, rows), lines are cut to its width and the frame to its height, so it never scrolls.
pub fn frame(snap: &Snapshot, interval: f64, clock: &str, size: Option<(usize, usize)>) -> String {
    let mut body =
        format!("connscope sockets — port {} — every {interval}s — {clock} — Ctrl-C to stop\n{} sockets\n", snap.port, snap.sockets);
    write_body(&mut body, snap, true);
    let mut out = String::with_capacity(body.len() + 256);
    out.push_str("\x1b[H");
    let (columns, rows) = size.unwrap_or((usize::MAX, usize::MAX));
    // The last row stays free: a newline there would scroll.
    for line in body.lines().take(rows.saturating_sub(1).max(1)) {
        out.extend(line.chars().take(columns));
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

/// The counts table, the owners and the notes; `watch` adds the change columns.
fn write_body(out: &mut String, snap: &Snapshot, watch: bool) {
    let changes = if watch { snap.changes.as_ref() } else { None };
    let change = |side: Side, state: TcpState| -> String {
        let map = changes.map(|c| match side {
            Side::Client => &c.client,
            Side::Server => &c.server,
        });
        match map.and_then(|m| m.get(state.name())) {
            Some(d) => format!("{d:+}"),
            None => String::new(),
        }
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["state", "client"];
    if watch {
        header.push("±");
    }
    header.push("server");
    if watch {
        header.push("±");
    }
    header.extend(["total", "no owner"]);
    t.set_header(header);
    for state in ALL_STATES {
        let moved = !change(Side::Client, state).is_empty() || !change(Side::Server, state).is_empty();
        if snap.states.get(state) == 0 && !moved && !ALWAYS_SHOWN.contains(&state) {
            continue;
        }
        let mut row = vec![Cell::new(state.name()), number(snap.client.get(state))];
        if watch {
            row.push(Cell::new(change(Side::Client, state)).set_alignment(CellAlignment::Right));
        }
        row.push(number(snap.server.get(state)));
        if watch {
            row.push(Cell::new(change(Side::Server, state)).set_alignment(CellAlignment::Right));
        }
        row.extend([number(snap.states.get(state)), number(snap.no_owner.get(state))]);
        t.add_row(row);
    }
    let _ = writeln!(out, "{t}");

    if !snap.owners.is_empty() {
        let mut o = Table::new();
        o.load_preset(UTF8_FULL_CONDENSED);
        o.set_header(vec!["pid", "command", "side", "sockets", "states"]);
        for owner in snap.owners.iter().take(MAX_OWNERS) {
            o.add_row(vec![
                Cell::new(owner.pid).set_alignment(CellAlignment::Right),
                Cell::new(&owner.command),
                Cell::new(owner.side.name()),
                number(owner.sockets),
                Cell::new(state_list(&owner.states)),
            ]);
        }
        let _ = writeln!(out, "{o}");
        if snap.owners.len() > MAX_OWNERS {
            let _ = writeln!(out, "… and {} more processes (--format json lists all)", snap.owners.len() - MAX_OWNERS);
        }
    }
    let unowned = snap.no_owner.total();
    if unowned > 0 {
        let _ = writeln!(
            out,
            "{unowned} sockets have no owning process (inode 0: {}): the kernel holds them after close (TIME_WAIT: 60 s).",
            state_list(&snap.no_owner)
        );
    }
    let unknown = snap.owner_unknown.total();
    if unknown > 0 {
        let _ = writeln!(
            out,
            "{unknown} sockets belong to no process found in /proc ({}): another user's (run as root) or another PID namespace's.",
            state_list(&snap.owner_unknown)
        );
    }
}

fn number(n: u32) -> Cell {
    Cell::new(n).set_alignment(CellAlignment::Right)
}

/// `ESTABLISHED 3, CLOSE_WAIT 1`: the non-zero counts.
fn state_list(counts: &StateCounts) -> String {
    ALL_STATES.into_iter().filter(|s| counts.get(*s) > 0).map(|s| format!("{} {}", s.name(), counts.get(s))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::KernelSocket;
    use std::collections::HashMap;

    fn snap(time_waits: u16) -> Snapshot {
        let sockets: Vec<KernelSocket> = (0..time_waits)
            .map(|i| KernelSocket {
                local: format!("127.0.0.1:{}", 40000 + i).parse().expect("addr"),
                remote: "127.0.0.1:9000".parse().expect("addr"),
                state: TcpState::TIME_WAIT,
                inode: 0,
                uid: 0,
            })
            .collect();
        Snapshot::build(9000, 0.0, &sockets, &HashMap::new())
    }

    #[test]
    fn test_frame_redraws_in_place_and_shows_changes() {
        let before = snap(1);
        let mut now = snap(4);
        now.compare_with(&before);
        let f = frame(&now, 1.0, "00:00:00", None);
        assert!(f.starts_with("\x1b[H"));
        assert!(f.ends_with("\x1b[J"));
        assert!(f.lines().all(|l| l.ends_with("\x1b[K") || l == "\x1b[J"));
        assert!(f.contains("+3"), "{f}");
    }

    #[test]
    fn test_frame_fits_the_terminal() {
        let f = frame(&snap(4), 1.0, "00:00:00", Some((20, 5)));
        assert_eq!(f.lines().count(), 5, "4 rows of text and the closing clear: {f}");
        assert!(f.lines().all(|l| l.trim_end_matches("\x1b[K").trim_start_matches("\x1b[H").chars().count() <= 20), "{f}");
    }

    #[test]
    fn test_table_says_time_wait_has_no_owner() {
        let t = table(&snap(2));
        assert!(t.contains("TIME_WAIT"));
        assert!(t.contains("2 sockets have no owning process"), "{t}");
    }
}
