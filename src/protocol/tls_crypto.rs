//! TLS record protection with logged secrets: the cipher suites connscope decrypts, the TLS 1.3
//! key schedule (HKDF-Expand-Label, RFC 8446 7.1-7.3), the TLS 1.2 PRF and key block (RFC 5246
//! 5 and 6.3) and AEAD record opening (RFC 8446 5.2, RFC 5288 3, RFC 7905 2). The cryptography
//! itself is the RustCrypto crates'; this is only the glue.

use super::keylog::Secret;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// Length of an AEAD tag (all the suites read here).
const TAG: usize = 16;
/// Length of the explicit nonce in a TLS 1.2 AES-GCM record.
const EXPLICIT_NONCE: usize = 8;

/// Hash of a cipher suite's key schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

/// AEAD of a cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
        }
    }
}

/// A cipher suite connscope can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub cipher: Cipher,
    pub hash: Hash,
    /// A TLS 1.3 suite (0x13xx).
    pub tls13: bool,
}

impl Suite {
    /// The suite with IANA number `id`, when it is one of the AEAD suites read: the TLS 1.3 ones and
    /// the TLS 1.2 AES-GCM and ChaCha20-Poly1305 ones (whatever their key exchange: the key log
    /// holds the master secret).
    pub fn from_id(id: u16) -> Option<Suite> {
        let (cipher, hash, tls13) = match id {
            0x1301 => (Cipher::Aes128Gcm, Hash::Sha256, true),
            0x1302 => (Cipher::Aes256Gcm, Hash::Sha384, true),
            0x1303 => (Cipher::ChaCha20Poly1305, Hash::Sha256, true),
            // (EC)DHE and RSA key exchange with AES-GCM (RFC 5288, 5289).
            0x009c | 0x009e | 0xc02b | 0xc02f => (Cipher::Aes128Gcm, Hash::Sha256, false),
            0x009d | 0x009f | 0xc02c | 0xc030 => (Cipher::Aes256Gcm, Hash::Sha384, false),
            // ChaCha20-Poly1305 (RFC 7905).
            0xcca8..=0xccaa => (Cipher::ChaCha20Poly1305, Hash::Sha256, false),
            _ => return None,
        };
        Some(Suite { cipher, hash, tls13 })
    }

    fn hash_len(self) -> usize {
        match self.hash {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// An AEAD keyed for one direction.
enum Aead {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Aead {
    fn new(cipher: Cipher, key: &[u8]) -> Option<Aead> {
        Some(match cipher {
            Cipher::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Cipher::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Cipher::ChaCha20Poly1305 => Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?)),
        })
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ciphertext: &mut [u8], tag: &[u8]) -> bool {
        let (nonce, tag) = (GenericArray::from_slice(nonce), GenericArray::from_slice(tag));
        match self {
            Aead::Aes128(aead) => aead.decrypt_in_place_detached(nonce, aad, ciphertext, tag).is_ok(),
            Aead::Aes256(aead) => aead.decrypt_in_place_detached(nonce, aad, ciphertext, tag).is_ok(),
            Aead::ChaCha(aead) => aead.decrypt_in_place_detached(nonce, aad, ciphertext, tag).is_ok(),
        }
    }
}

/// The protection of one direction's records: its key, IV and record sequence number.
pub struct RecordProtection {
    aead: Aead,
    /// TLS 1.3 and ChaCha20: the 12-byte IV XORed with the sequence number; TLS 1.2 AES-GCM:
    /// the 4-byte salt followed by the record's explicit nonce.
    iv: [u8; 12],
    explicit_nonce: bool,
    tls13: bool,
    seq: u64,
}

impl std::fmt::Debug for RecordProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordProtection").field("tls13", &self.tls13).field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl RecordProtection {
    /// TLS 1.3 protection from a traffic secret (RFC 8446, 7.3).
    pub fn tls13(suite: Suite, secret: &Secret) -> Option<RecordProtection> {
        let mut key = [0; 32];
        let key = &mut key[..suite.cipher.key_len()];
        let mut iv = [0; 12];
        expand_label(suite.hash, secret.bytes(), b"key", key)?;
        expand_label(suite.hash, secret.bytes(), b"iv", &mut iv)?;
        Some(RecordProtection { aead: Aead::new(suite.cipher, key)?, iv, explicit_nonce: false, tls13: true, seq: 0 })
    }

    /// The client's and the server's TLS 1.2 protection from the master secret (RFC 5246, 6.3:
    /// the key block is client key, server key, client IV, server IV for an AEAD suite).
    pub fn tls12_pair(suite: Suite, master: &Secret, client_random: &[u8; 32], server_random: &[u8; 32]) -> Option<[RecordProtection; 2]> {
        let key_len = suite.cipher.key_len();
        let iv_len = if suite.cipher == Cipher::ChaCha20Poly1305 { 12 } else { 4 };
        let mut block = [0; 2 * (32 + 12)];
        let block = &mut block[..2 * (key_len + iv_len)];
        let mut seed = [0; 64];
        seed[..32].copy_from_slice(server_random);
        seed[32..].copy_from_slice(client_random);
        prf(suite.hash, master.bytes(), b"key expansion", &seed, block);
        let (keys, ivs) = block.split_at(2 * key_len);
        let side = |i: usize| {
            let mut iv = [0; 12];
            iv[..iv_len].copy_from_slice(&ivs[i * iv_len..(i + 1) * iv_len]);
            let aead = Aead::new(suite.cipher, &keys[i * key_len..(i + 1) * key_len])?;
            Some(RecordProtection { aead, iv, explicit_nonce: iv_len == 4, tls13: false, seq: 0 })
        };
        Some([side(0)?, side(1)?])
    }

    /// A record that could not be read whole went by: its sequence number is used.
    pub fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
    }

    /// The last record opened is taken back: it was not this direction's (TLS 1.3 early data).
    pub fn rewind(&mut self) {
        self.seq = self.seq.wrapping_sub(1);
    }

    /// Opens one record in place (`header`: its 5 header bytes, `body`: its body). Returns the
    /// content type and where the plaintext is in `body`; `None` when the record does not
    /// authenticate. The sequence number advances either way.
    pub fn open(&mut self, header: &[u8; 5], body: &mut [u8]) -> Option<(u8, std::ops::Range<usize>)> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let prefix = if self.explicit_nonce { EXPLICIT_NONCE } else { 0 };
        let plain_len = body.len().checked_sub(prefix + TAG)?;
        let mut nonce = self.iv;
        if self.explicit_nonce {
            nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE]);
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        let (ciphertext, tag) = body[prefix..].split_at_mut(plain_len);
        if self.tls13 {
            if !self.aead.open(&nonce, header, ciphertext, tag) {
                return None;
            }
            // TLSInnerPlaintext: content, the real content type, zero padding (RFC 8446, 5.2).
            let end = ciphertext.iter().rposition(|b| *b != 0)?;
            return Some((ciphertext[end], 0..end));
        }
        let mut aad = [0; 13];
        aad[..8].copy_from_slice(&seq.to_be_bytes());
        aad[8..11].copy_from_slice(&header[..3]);
        aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
        self.aead.open(&nonce, &aad, ciphertext, tag).then_some((header[0], prefix..prefix + plain_len))
    }
}

#[cfg(test)]
impl RecordProtection {
    /// Seals one record as the peer would: the whole record, header included (tests only).
    pub fn seal(&mut self, content_type: u8, plaintext: &[u8]) -> Vec<u8> {
        let seq = self.seq;
        self.seq += 1;
        let mut nonce = self.iv;
        let mut body = plaintext.to_vec();
        if self.tls13 {
            body.push(content_type);
        }
        let prefix = if self.explicit_nonce { EXPLICIT_NONCE } else { 0 };
        let len = (prefix + body.len() + TAG) as u16;
        let record_type = if self.tls13 { 23 } else { content_type };
        let mut header = vec![record_type, 3, 3];
        header.extend_from_slice(&len.to_be_bytes());
        if self.explicit_nonce {
            nonce[4..].copy_from_slice(&seq.to_be_bytes());
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        let aad = if self.tls13 {
            header.clone()
        } else {
            [&seq.to_be_bytes()[..], &header[..3], &(plaintext.len() as u16).to_be_bytes()].concat()
        };
        let nonce_array = GenericArray::from_slice(&nonce);
        let tag = match &self.aead {
            Aead::Aes128(aead) => aead.encrypt_in_place_detached(nonce_array, &aad, &mut body),
            Aead::Aes256(aead) => aead.encrypt_in_place_detached(nonce_array, &aad, &mut body),
            Aead::ChaCha(aead) => aead.encrypt_in_place_detached(nonce_array, &aad, &mut body),
        }
        .expect("seal");
        let mut record = header;
        if self.explicit_nonce {
            record.extend_from_slice(&seq.to_be_bytes());
        }
        record.extend_from_slice(&body);
        record.extend_from_slice(&tag);
        record
    }
}

/// The next TLS 1.3 application traffic secret, after a KeyUpdate (RFC 8446, 7.2).
pub fn next_traffic_secret(suite: Suite, secret: &Secret) -> Option<Secret> {
    let mut next = [0; 48];
    let next = &mut next[..suite.hash_len()];
    expand_label(suite.hash, secret.bytes(), b"traffic upd", next)?;
    Secret::new(next)
}

/// HKDF-Expand-Label with an empty context (RFC 8446, 7.1).
fn expand_label(hash: Hash, secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    match hash {
        Hash::Sha256 => Hkdf::<Sha256>::from_prk(secret).ok()?.expand(&info, out).ok(),
        Hash::Sha384 => Hkdf::<Sha384>::from_prk(secret).ok()?.expand(&info, out).ok(),
    }
}

/// The TLS 1.2 PRF: P_hash(secret, label + seed) (RFC 5246, 5).
fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let label_seed = [label, seed].concat();
    match hash {
        Hash::Sha256 => p_hash::<Hmac<Sha256>>(secret, &label_seed, out),
        Hash::Sha384 => p_hash::<Hmac<Sha384>>(secret, &label_seed, out),
    }
}

fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[u8], out: &mut [u8]) {
    let Ok(keyed) = <M as KeyInit>::new_from_slice(secret) else { return };
    let mut a = keyed.clone().chain_update(seed).finalize().into_bytes();
    for chunk in out.chunks_mut(a.len()) {
        let block = keyed.clone().chain_update(&a).chain_update(seed).finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
        a = keyed.clone().chain_update(&a).finalize().into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn test_tls13_traffic_keys_match_rfc8448_simple_handshake() {
        // RFC 8448, 3: the server handshake traffic secret and its key and IV.
        let secret = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let (mut key, mut iv) = ([0; 16], [0; 12]);
        expand_label(Hash::Sha256, &secret, b"key", &mut key).expect("expand");
        expand_label(Hash::Sha256, &secret, b"iv", &mut iv).expect("expand");
        assert_eq!(key.to_vec(), hex("3fce516009c21727d0f2e4e86ee403bc"));
        assert_eq!(iv.to_vec(), hex("5d313eb2671276ee13000b30"));
    }

    #[test]
    fn test_tls12_prf_matches_the_known_sha256_vector() {
        // The TLS 1.2 PRF-SHA256 test vector published with the IETF TLS WG mailing list
        // (secret, "test label", seed; first 100 bytes).
        let secret = hex("9bbe436ba940f017b17652849a71db35");
        let seed = hex("a0ba9f936cda311827a6f796ffd5198c");
        let mut out = [0; 100];
        prf(Hash::Sha256, &secret, b"test label", &seed, &mut out);
        assert_eq!(
            out.to_vec(),
            hex("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66")
        );
    }

    #[test]
    fn test_a_record_sealed_with_the_same_keys_opens_and_a_flipped_bit_fails() {
        for id in [0x1301, 0x1302, 0x1303] {
            let suite = Suite::from_id(id).expect("suite");
            let secret = Secret::new(&[5; 48][..suite.hash_len()]).expect("secret");
            let mut sealer = RecordProtection::tls13(suite, &secret).expect("keys");
            let mut opener = RecordProtection::tls13(suite, &secret).expect("keys");
            for _ in 0..2 {
                let mut record = sealer.seal(23, b"GET / HTTP/1.1\r\n\r\n");
                let (header, body) = record.split_at_mut(5);
                let (kind, range) = opener.open(&header.try_into().expect("5 bytes"), body).expect("opens");
                assert_eq!((kind, &body[range]), (23, &b"GET / HTTP/1.1\r\n\r\n"[..]), "suite {id:04x}");
            }
            let mut record = sealer.seal(23, b"x");
            record[6] ^= 1;
            let (header, body) = record.split_at_mut(5);
            assert_eq!(opener.open(&header.try_into().expect("5 bytes"), body), None);
            assert_eq!(opener.seq, 3);
        }
    }

    #[test]
    fn test_tls12_records_open_with_the_key_block_of_the_master_secret() {
        let master = Secret::new(&[9; 48]).expect("48 bytes");
        for id in [0xc02f, 0xc030, 0xcca8] {
            let suite = Suite::from_id(id).expect("suite");
            let [mut client, _] = RecordProtection::tls12_pair(suite, &master, &[1; 32], &[2; 32]).expect("keys");
            let [mut opener, _] = RecordProtection::tls12_pair(suite, &master, &[1; 32], &[2; 32]).expect("keys");
            let [_, mut wrong_side] = RecordProtection::tls12_pair(suite, &master, &[1; 32], &[2; 32]).expect("keys");
            let mut record = client.seal(23, b"POST /x HTTP/1.1\r\n\r\n");
            let mut copy = record.clone();
            let (header, body) = record.split_at_mut(5);
            let (kind, range) = opener.open(&header.try_into().expect("5 bytes"), body).expect("opens");
            assert_eq!((kind, &body[range]), (23, &b"POST /x HTTP/1.1\r\n\r\n"[..]), "suite {id:04x}");
            let (header, body) = copy.split_at_mut(5);
            assert_eq!(
                wrong_side.open(&header.try_into().expect("5 bytes"), body),
                None,
                "the server's keys do not open the client's records"
            );
        }
    }
}
