//! The live frame source of a real capture: a network device through libpcap, with an optional savefile.
//!
//! The device is read without blocking; when no packet is waiting, [`Device::read`] polls the
//! descriptor for at most [`READ_TIMEOUT`], so the caller's loop wakes up regularly to check its
//! stop conditions even when no traffic flows.
//!
//! Packets are delivered in batches at most [`DELIVERY_DELAY`] old rather than in libpcap's
//! immediate mode, on purpose: on Linux, immediate mode makes libpcap fall back from TPACKET_V3
//! (variable-size slots) to TPACKET_V2, whose ring has one fixed slot per packet sized for the
//! snaplen, so a 64 MiB buffer holds only about a thousand loopback packets and a busy link drops
//! within milliseconds. With TPACKET_V3 the same buffer holds hundreds of thousands of packets.
//! The BPF filter is installed before [`Device::open`] returns: anything started after it (a
//! command run around the capture) has every packet seen, SYN included.
//!
//! The `-w` file is written by connscope's own [`Savefile`], not libpcap's `pcap_dump`, so that a
//! full disk is noticed and the file still ends after a whole packet (see `docs/capture.md`).

use super::savefile::Savefile;
use super::FrameSource;
use crate::error::Error;
use crate::source::RawPacket;
use crate::wire::LinkType;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Snapshot length: the whole packet even on `lo`, whose MTU is 65536.
pub const DEFAULT_SNAPLEN: i32 = 262_144;
/// Kernel buffer in MiB (`-B`): with it, loopback under wrk (~150k packets/s, 2 shared cores)
/// dropped nothing in `scripts/bench/capture-load.sh`; at 1 MiB the same load drops.
pub const DEFAULT_BUFFER_MIB: u32 = 64;
/// Longest wait for a packet in [`Device::read`], so stop conditions are checked.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest time a captured packet waits in the kernel before it is handed over (libpcap's
/// timeout): the live view's lag on a quiet link.
pub const DELIVERY_DELAY: Duration = Duration::from_millis(20);

/// The loopback device's name on this system.
pub fn default_interface() -> &'static str {
    if cfg!(target_os = "linux") {
        "lo"
    } else {
        "lo0"
    }
}

/// How to open a live capture.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Device name (`lo`, `eth0`, `any`).
    pub interface: String,
    /// BPF filter in tcpdump syntax, compiled by libpcap.
    pub filter: Option<String>,
    /// Bytes kept of each packet.
    pub snaplen: i32,
    /// Kernel buffer in MiB.
    pub buffer_mib: u32,
    /// File to save every captured packet to (pcap format).
    pub save_to: Option<String>,
}

/// libpcap's counters, read with [`Device::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets the kernel passed the filter, as libpcap reports them (see [`Device::stats`]).
    pub received: u64,
    /// Packets dropped because the buffer was full (connscope did not read fast enough).
    pub dropped_by_kernel: u64,
    /// Packets dropped by the interface or its driver.
    pub dropped_by_interface: u64,
}

/// Why reading a live capture stopped for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// The interface was removed (or taken down, where libpcap reports that); libpcap's message.
    InterfaceGone(String),
    /// Any other read error; libpcap's message.
    Failed(String),
}

/// An open live capture.
pub struct Device {
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    link: LinkType,
    savefile: Option<Savefile>,
    /// The last read found no packet: wait for one before reading again.
    idle: bool,
}

impl Device {
    /// Opens and activates `options.interface`, installs the filter and creates the savefile.
    ///
    /// Errors say what to do: no permission (run as root or grant the capabilities), unknown
    /// interface (with the list of interfaces), a filter libpcap cannot compile (its message).
    pub fn open(options: &LiveOptions) -> Result<Device, Error> {
        let name = options.interface.as_str();
        let inactive = pcap::Capture::from_device(name).map_err(|e| open_error(name, &e))?;
        let buffer_bytes = i32::try_from(u64::from(options.buffer_mib) * 1024 * 1024)
            .map_err(|_| Error::Usage(format!("-B {} MiB is too large (at most 2047)", options.buffer_mib)))?;
        let mut cap = inactive
            .immediate_mode(false)
            .timeout(DELIVERY_DELAY.as_millis() as i32)
            .snaplen(options.snaplen)
            .buffer_size(buffer_bytes)
            .promisc(false)
            .open()
            .map_err(|e| open_error(name, &e))?
            .setnonblock()
            .map_err(|e| Error::Capture(format!("cannot capture on {name}: {}", pcap_message(&e))))?;
        let dlt = cap.get_datalink();
        let link_name = dlt.get_name().unwrap_or_else(|_| format!("DLT {}", dlt.0));
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            Error::Capture(format!(
                "{name}: link type {link_name} (DLT {}) is not supported; capture on the loopback, an Ethernet device or `any`",
                dlt.0
            ))
        })?;
        if let Some(filter) = &options.filter {
            cap.filter(filter, true).map_err(|e| Error::Filter { filter: filter.clone(), reason: pcap_message(&e) })?;
        }
        let savefile = match &options.save_to {
            Some(path) => Some(
                Savefile::create(path, dlt.0, options.snaplen).map_err(|e| Error::Create { path: path.clone(), reason: e.to_string() })?,
            ),
            None => None,
        };
        Ok(Device { cap, interface: name.to_string(), link, savefile, idle: false })
    }

    /// The link type of the device.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Hands the packets waiting in the kernel's buffer (at most `limit`) to `each`, after saving
    /// each to the savefile; returns how many. With none waiting, first waits up to
    /// [`READ_TIMEOUT`] for some (returning 0 if none came). The savefile is written out after
    /// each batch; a failed write stops only the saving (see [`Device::save_failure`]).
    ///
    /// Packets are read in place from libpcap's ring, without a copy. An error means the capture
    /// cannot go on; what was read stays valid.
    pub fn read(&mut self, limit: Option<usize>, each: &mut dyn FnMut(RawPacket<'_>)) -> Result<usize, ReadFailure> {
        if self.idle {
            self.idle = false;
            if !wait_readable(self.cap.as_raw_fd(), READ_TIMEOUT) {
                return Ok(0);
            }
        }
        let savefile = &mut self.savefile;
        let read = self
            .cap
            .dispatch(limit, |packet| {
                let ts = packet.header.ts;
                if let Some(file) = savefile.as_mut() {
                    // pcap files hold 32-bit seconds and microseconds, as libpcap writes them.
                    file.write(ts.tv_sec as u32, ts.tv_usec as u32, packet.data, packet.header.len);
                }
                each(RawPacket { ts: ts.tv_sec as f64 + ts.tv_usec as f64 * 1e-6, data: packet.data, orig_len: packet.header.len });
            })
            .map_err(|e| self.failure(&e));
        if let Some(file) = &mut self.savefile {
            file.flush();
        }
        let read = read?;
        self.idle = read == 0;
        Ok(read)
    }

    /// Classifies a read error: the interface gone (no longer listed by the system, or libpcap says
    /// it went down) or any other failure.
    fn failure(&self, e: &pcap::Error) -> ReadFailure {
        let message = pcap_message(e);
        let name = std::ffi::CString::new(self.interface.as_str()).ok();
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        let exists = name.is_some_and(|n| unsafe { libc::if_nametoindex(n.as_ptr()) } != 0);
        if !exists || message.to_lowercase().contains("went down") {
            ReadFailure::InterfaceGone(message)
        } else {
            ReadFailure::Failed(message)
        }
    }

    /// Why the savefile stopped being written, once a write failed (the disk is full).
    pub fn save_failure(&self) -> Option<&str> {
        self.savefile.as_ref().and_then(Savefile::failure)
    }

    /// Packets written whole to the savefile; `None` without one.
    pub fn saved(&self) -> Option<u64> {
        self.savefile.as_ref().map(Savefile::saved)
    }

    /// libpcap's counters since the capture started.
    ///
    /// On Linux loopback the kernel hands the packet socket each packet twice (outgoing and
    /// incoming) and libpcap keeps one copy, so `received` there is twice the packets delivered,
    /// and `dropped_by_kernel` counts both copies of a lost packet (about twice the packets lost).
    /// The capture command reports the packets it was delivered as `received` (what the `-w` file
    /// holds) and the drop counters as libpcap gives them: a loss is over-stated, never hidden.
    pub fn stats(&mut self) -> Result<LiveStats, Error> {
        let s = self.cap.stats().map_err(|e| Error::Capture(format!("reading capture statistics: {}", pcap_message(&e))))?;
        Ok(LiveStats {
            received: u64::from(s.received),
            dropped_by_kernel: u64::from(s.dropped),
            dropped_by_interface: u64::from(s.if_dropped),
        })
    }
}

/// Parses a duration: `30s`, `500ms`, `2m`, `1h` or plain seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration (examples: 30s, 500ms, 2m, 10)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

/// Waits until `fd` is readable or `timeout` passes; true when there may be something to read.
fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    // An error (EINTR from a signal) counts as a timeout: the caller checks its conditions and retries.
    ready > 0
}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Turns libpcap's open/activate failures into errors that say what to do.
fn open_error(interface: &str, e: &pcap::Error) -> Error {
    let msg = pcap_message(e);
    let lower = msg.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return Error::CapturePermission { interface: interface.to_string(), detail: msg };
    }
    let known = pcap::Device::list().map(|list| list.into_iter().map(|d| d.name).collect::<Vec<_>>()).unwrap_or_default();
    if lower.contains("no such device") || (!known.is_empty() && !known.iter().any(|n| n == interface)) {
        return Error::UnknownInterface { interface: interface.to_string(), available: known.join(", ") };
    }
    Error::Capture(format!("cannot capture on {interface}: {msg}"))
}

impl FrameSource for Device {
    fn link(&self) -> LinkType {
        Device::link(self)
    }

    fn read(&mut self, limit: Option<usize>, each: &mut dyn FnMut(RawPacket<'_>)) -> Result<usize, ReadFailure> {
        Device::read(self, limit, each)
    }

    fn stats(&mut self) -> Result<LiveStats, Error> {
        Device::stats(self)
    }

    fn save_failure(&self) -> Option<&str> {
        Device::save_failure(self)
    }

    fn saved(&self) -> Option<u64> {
        Device::saved(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_and_without_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
