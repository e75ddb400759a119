//! `keylog`: arbitrary text as an NSS key log (`--keylog`, a pcapng Decryption Secrets Block),
//! then every secret read back by the client randoms the text names. Lines that do not parse
//! are warnings with their line number, never a panic.
#![no_main]

use connscope::protocol::keylog::TlsKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut keys = TlsKeys::new();
    let warnings = keys.add_key_log(data);
    let lines = data.split(|b| *b == b'\n').count();
    assert!(warnings.iter().all(|w| w.line >= 1 && w.line <= lines));
    assert!(keys.len() <= lines);
    // Every 64-hex-digit word the text holds, looked up as a client random.
    for word in data.split(|b| b.is_ascii_whitespace()) {
        if word.len() == 64 {
            let mut random = [0u8; 32];
            if let Ok(text) = std::str::from_utf8(word).map_err(drop).and_then(|t| if t.is_ascii() { Ok(t) } else { Err(()) }) {
                if (0..32).all(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map(|b| random[i] = b).is_ok()) {
                    if let Some(secrets) = keys.secrets(&random) {
                        let lens = [secrets.master, secrets.client_handshake, secrets.server_traffic].map(|s| s.map_or(0, |s| s.bytes().len()));
                        assert!(lens.iter().all(|len| *len <= 48));
                    }
                }
            }
        }
    }
});
