//! One module per subcommand: each turns its arguments into a run of the shared pipeline.

pub mod analyze;
pub mod capture;
pub mod completions;
pub mod man;
pub mod sockets;

/// The filter as the report shows it: `tcp port N`, the BPF expression, or both.
pub fn effective_filter(port: Option<u16>, bpf: Option<&str>) -> Option<String> {
    match (port, bpf) {
        (Some(p), Some(f)) => Some(format!("tcp port {p} and ({f})")),
        (Some(p), None) => Some(format!("tcp port {p}")),
        (None, Some(f)) => Some(f.to_string()),
        (None, None) => None,
    }
}
