//! The v2 record layer: [`Sealer`] and [`Opener`], one per direction, with implicit sequence
//! numbers, epoch rekeying and a hard limit (after rustls's `crypto/cipher/record_layer.rs`).
//!
//! Wire form of a record: `{"event":"encrypted","data":{"ct":"<base64 ciphertext ‖ tag>"}}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::handshake::Verified;
use super::schedule::{IV_LEN, TrafficSecret};
use super::{Direction, MAX_BATCH_BYTES, MAX_RECORDS, REKEY_INTERVAL, VERSION};
use crate::crypto::CryptoError;
use crate::crypto::aead::{Aes256GcmKey, TAG_LEN};
use crate::crypto::b64;

/// Length of the AAD: version ‖ direction ‖ seq.
const AAD_LEN: usize = VERSION.len() + 1 + 8;
/// The record text around the base64 field.
const RECORD_HEAD: &str = r#"{"event":"encrypted","data":{"ct":""#;
const RECORD_TAIL: &str = r#""}}"#;

/// One direction's record protection: the epoch's cipher and IV base, and the counter.
///
/// Crate-internal building block of [`Sealer`] and [`Opener`]; the handshake uses it bare only
/// to open the client's `fin` record before the proof for an [`Opener`] exists.
pub(super) struct RecordLayer {
    direction: Direction,
    /// The current epoch's traffic secret, kept to derive the next one.
    secret: TrafficSecret,
    cipher: Aes256GcmKey,
    iv: [u8; IV_LEN],
    /// The sequence number of the next record.
    seq: u64,
    /// The sequence number at which the next epoch starts.
    epoch_end: u64,
    /// Set by any failure: the layer refuses all further work.
    poisoned: bool,
}

impl RecordLayer {
    /// A layer whose next record is `seq`, with `secret` being the traffic secret of the epoch
    /// `seq` falls in.
    pub(super) fn new(
        secret: TrafficSecret,
        direction: Direction,
        seq: u64,
    ) -> Result<Self, CryptoError> {
        let (cipher, iv) = secret.record_keys()?;
        let epoch_end = (seq / REKEY_INTERVAL)
            .checked_add(1)
            .and_then(|e| e.checked_mul(REKEY_INTERVAL))
            .ok_or(CryptoError)?;
        Ok(Self {
            direction,
            secret,
            cipher,
            iv,
            seq,
            epoch_end,
            poisoned: false,
        })
    }

    /// The sequence number for the next record, moving to the next epoch first if it starts
    /// here. Fails (for good) at the hard limit.
    fn next_seq(&mut self) -> Result<u64, CryptoError> {
        // SECURITY: hard limit. 2^32 records per direction is far below AES-GCM's bounds for
        // one key, but a channel that old must be re-established, never wrapped.
        if self.poisoned || self.seq >= MAX_RECORDS {
            self.poisoned = true;
            return Err(CryptoError);
        }
        if self.seq == self.epoch_end {
            // SECURITY: rekey every REKEY_INTERVAL records; the old secret is dropped (and
            // zeroized), so compromising the current state does not expose earlier epochs.
            let next = self.secret.next()?;
            let (cipher, iv) = next.record_keys()?;
            self.secret = next;
            self.cipher = cipher;
            self.iv = iv;
            self.epoch_end = self.epoch_end.saturating_add(REKEY_INTERVAL);
        }
        Ok(self.seq)
    }

    /// `iv ⊕ (0⁴ ‖ seq)`.
    fn nonce(&self, seq: u64) -> [u8; IV_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[IV_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// `"sealcast-v2" ‖ direction ‖ seq`.
    fn aad(&self, seq: u64) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[..VERSION.len()].copy_from_slice(VERSION.as_bytes());
        aad[VERSION.len()] = self.direction.aad_byte();
        aad[VERSION.len() + 1..].copy_from_slice(&seq.to_be_bytes());
        aad
    }

    /// Encrypts `plaintext` as the next record into `out`, which must be exactly
    /// `plaintext.len() + TAG_LEN` bytes: `ciphertext ‖ tag`.
    fn seal_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
        let seq = self.next_seq()?;
        self.cipher
            .seal_into(&self.nonce(seq), &self.aad(seq), plaintext, out)?;
        self.seq += 1;
        Ok(())
    }

    /// Opens the next record from its complete text; any failure poisons the layer.
    pub(super) fn open_record(&mut self, record: &str) -> Result<Vec<u8>, CryptoError> {
        match parse_record(record) {
            Ok(ct) => self.open(ct),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Decrypts `ciphertext ‖ tag` in place as the next record; returns the plaintext. Any
    /// failure poisons the layer.
    fn open(&mut self, mut buf: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        let result = self.open_inner(&mut buf);
        if result.is_err() {
            self.poisoned = true;
        }
        result.map(|body_len| {
            buf.truncate(body_len);
            buf
        })
    }

    fn open_inner(&mut self, buf: &mut [u8]) -> Result<usize, CryptoError> {
        let seq = self.next_seq()?;
        // SECURITY: the expected sequence number is implicit: a replayed, reordered, dropped or
        // reflected record is opened under the wrong nonce and AAD and fails the tag check
        // (compared in constant time); no unauthenticated plaintext is returned.
        let body_len = self
            .cipher
            .open_in_place(&self.nonce(seq), &self.aad(seq), buf)?;
        self.seq += 1;
        Ok(body_len)
    }
}

/// Seals one direction's records: the server's writer owns the server→client `Sealer`, the
/// client's the client→server one.
///
/// Only a verified handshake ([`super::Established`]) creates one. Not `Clone` (two copies would
/// reuse nonces), not `Debug`; its keys are zeroized on drop.
pub struct Sealer {
    layer: RecordLayer,
    /// The peer offered [`BATCH`](super::BATCH): records may carry several frames ([`Batch`]).
    batches: bool,
}

impl Sealer {
    /// SECURITY: the proof argument can only be created by the handshake code once the peer's
    /// `fin` verified.
    pub(super) fn new(layer: RecordLayer, _proof: Verified) -> Self {
        Self {
            layer,
            batches: false,
        }
    }

    /// Marks the peer as taking batched records (it offered [`BATCH`](super::BATCH)).
    pub(super) fn with_batches(mut self, batches: bool) -> Self {
        self.batches = batches;
        self
    }

    /// Whether the peer takes batched records: its hello offered [`BATCH`](super::BATCH) (only
    /// ever true for the server's sealer). Without it, every record carries exactly one frame.
    pub fn batches(&self) -> bool {
        self.batches
    }

    /// Builds a sealer from a fixed traffic secret, with `seq` as the next record number and
    /// `secret` the traffic secret of the epoch `seq` falls in. For tests and fuzzing only:
    /// it skips the handshake, so nothing it seals is authenticated to anyone. It seals
    /// batched records too, as for a peer that offered them.
    ///
    /// # Errors
    /// Never, in practice (key derivation from 32 bytes cannot fail).
    #[doc(hidden)]
    pub fn from_secret_for_testing(
        secret: [u8; 32],
        direction: Direction,
        seq: u64,
    ) -> Result<Self, CryptoError> {
        RecordLayer::new(TrafficSecret::from_bytes(secret), direction, seq).map(|layer| Self {
            layer,
            batches: true,
        })
    }

    /// Seals an encoded `{"event":..,"data":..}` frame as the next record and returns the
    /// complete record text `{"event":"encrypted","data":{"ct":"<b64>"}}`.
    ///
    /// # Errors
    /// [`CryptoError`] at the hard limit of [`super::MAX_RECORDS`] records (and ever after):
    /// the connection must close.
    pub fn seal(&mut self, frame: &[u8]) -> Result<String, CryptoError> {
        let mut out = Vec::new();
        self.seal_into(frame, &mut out)?;
        // Every byte written is ASCII, so this check cannot fail; it keeps the crate free of
        // `unsafe` at the cost of one fast scan.
        String::from_utf8(out).map_err(|_| CryptoError)
    }

    /// [`Sealer::seal`], appending the record text to `out` instead of allocating: the
    /// ciphertext is staged and base64-encoded straight into `out`.
    ///
    /// # Errors
    /// As [`Sealer::seal`]; `out` is left as it was.
    pub fn seal_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let total = Self::sealed_len(frame.len()).ok_or(CryptoError)?;
        let start = out.len();
        out.reserve(total);
        out.extend_from_slice(RECORD_HEAD.as_bytes());
        let layer = &mut self.layer;
        match b64::push_encoded_with(out, frame.len() + TAG_LEN, |raw| {
            layer.seal_into(frame, raw)
        }) {
            Ok(()) => {
                out.extend_from_slice(RECORD_TAIL.as_bytes());
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The length of the record text [`Sealer::seal`] makes of a frame of `frame_len` bytes,
    /// or `None` if that does not fit in memory.
    pub fn sealed_len(frame_len: usize) -> Option<usize> {
        let b64_len = base64::encoded_len(frame_len.checked_add(TAG_LEN)?, true)?;
        b64_len.checked_add(RECORD_HEAD.len() + RECORD_TAIL.len())
    }

    /// The sequence number the next record gets (so: how many were sealed).
    pub fn next_seq(&self) -> u64 {
        self.layer.seq
    }

    /// The direction this sealer seals for.
    pub fn direction(&self) -> Direction {
        self.layer.direction
    }
}

/// The plaintext of one server → client record being gathered from several frames, for a
/// peer that offered [`BATCH`](super::BATCH): `[frame,frame,...]`, at most
/// [`MAX_BATCH_BYTES`] (module docs).
///
/// Push frames while [`Batch::fits`] says so, then [`Batch::seal_into`]: two or more frames
/// become one batched record, a single frame a record of its own, as without batching.
#[derive(Debug, Default)]
pub struct Batch {
    text: Vec<u8>,
    frames: usize,
}

impl Batch {
    /// An empty batch (it allocates on the first push).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a frame of `len` bytes may join: always into an empty batch (a large frame goes
    /// alone), else if the batch stays within [`MAX_BATCH_BYTES`].
    pub fn fits(&self, len: usize) -> bool {
        self.frames == 0 || self.text.len() + 1 + len < MAX_BATCH_BYTES
    }

    /// Appends an encoded `{"event":..,"data":..}` frame.
    pub fn push(&mut self, frame: &[u8]) {
        if self.text.capacity() == 0 {
            // Room for a whole batch at once: growing by doubling would copy it several times.
            self.text.reserve(MAX_BATCH_BYTES.max(frame.len() + 2));
        }
        self.text.push(if self.frames == 0 { b'[' } else { b',' });
        self.text.extend_from_slice(frame);
        self.frames += 1;
    }

    /// The frames gathered.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Whether no frame is gathered.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Seals what is gathered as `sealer`'s next record, appended to `out` (nothing for an
    /// empty batch), and empties the batch, keeping its allocation.
    ///
    /// # Errors
    /// As [`Batch::seal_with`].
    pub fn seal_into(&mut self, sealer: &mut Sealer, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_with(sealer, |sealer, text| sealer.seal_into(text, out))
    }

    /// Hands what is gathered to `seal` with `sealer` as one record's plaintext (`seal` is not
    /// called for an empty batch), e.g. to write the record inside a WebSocket frame, and
    /// empties the batch, keeping its allocation.
    ///
    /// # Errors
    /// `seal`'s error, and [`CryptoError`] for two or more frames if the peer did not offer
    /// [`BATCH`](super::BATCH). The batch is emptied either way.
    pub fn seal_with(
        &mut self,
        sealer: &mut Sealer,
        seal: impl FnOnce(&mut Sealer, &[u8]) -> Result<(), CryptoError>,
    ) -> Result<(), CryptoError> {
        let sealed = match self.frames {
            0 => Ok(()),
            1 => seal(sealer, &self.text[1..]),
            _ if !sealer.batches => Err(CryptoError),
            _ => {
                self.text.push(b']');
                seal(sealer, &self.text)
            }
        };
        self.text.clear();
        self.frames = 0;
        sealed
    }
}

/// The frames a server → client record's plaintext carries, in order: the plaintext itself for
/// a single frame (it starts with `{`), or each element of a batched record (`[` followed by
/// one or more frames, for a client that offered [`BATCH`](super::BATCH)).
///
/// A batch's elements are parsed as JSON objects; a single frame is returned as it is, to be
/// parsed by the caller as before. Checking each frame's `event` is the caller's.
///
/// # Errors
/// [`CryptoError`] if the plaintext is a batch that is not JSON, is empty, or holds anything
/// but objects, or is neither a batch nor an object.
pub fn frames(plaintext: &[u8]) -> Result<Vec<&[u8]>, CryptoError> {
    match plaintext.first() {
        Some(b'{') => Ok(vec![plaintext]),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_slice(plaintext).map_err(|_| CryptoError)?;
            if items.is_empty() || !items.iter().all(|f| f.get().starts_with('{')) {
                return Err(CryptoError);
            }
            Ok(items.into_iter().map(|f| f.get().as_bytes()).collect())
        }
        _ => Err(CryptoError),
    }
}

/// Opens one direction's records, strictly in order.
///
/// Only a verified handshake ([`super::Established`]) creates one. Not `Clone`, not `Debug`;
/// its keys are zeroized on drop. After any failure it refuses every further record: the
/// connection must close.
pub struct Opener {
    layer: RecordLayer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordWire<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(borrow)]
    data: RecordData<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordData<'a> {
    #[serde(borrow)]
    ct: &'a str,
}

impl Opener {
    /// SECURITY: see [`Sealer::new`].
    pub(super) fn new(layer: RecordLayer, _proof: Verified) -> Self {
        Self { layer }
    }

    /// The opener matching [`Sealer::from_secret_for_testing`] with the same arguments. For
    /// tests and fuzzing only.
    ///
    /// # Errors
    /// Never, in practice.
    #[doc(hidden)]
    pub fn from_secret_for_testing(
        secret: [u8; 32],
        direction: Direction,
        seq: u64,
    ) -> Result<Self, CryptoError> {
        RecordLayer::new(TrafficSecret::from_bytes(secret), direction, seq)
            .map(|layer| Self { layer })
    }

    /// Opens the next record from its complete text
    /// (`{"event":"encrypted","data":{"ct":"<b64>"}}`, nothing more) and returns the sealed
    /// frame's bytes.
    ///
    /// This is the entry point for fuzzing the record layer: it never panics.
    ///
    /// # Errors
    /// [`CryptoError`] if the text is not exactly that shape, the base64 is not canonical, the
    /// ciphertext is shorter than the tag, the record is not the next one in this direction
    /// (replayed, reordered, dropped, reflected), any bit was modified, the hard limit was
    /// reached, or an earlier record failed. Every failure looks the same and poisons the
    /// opener.
    pub fn open(&mut self, record: &str) -> Result<Vec<u8>, CryptoError> {
        self.layer.open_record(record)
    }

    /// The sequence number the next record must carry (so: how many were opened).
    pub fn next_seq(&self) -> u64 {
        self.layer.seq
    }

    /// Whether a failure has made this opener refuse everything.
    pub fn is_poisoned(&self) -> bool {
        self.layer.poisoned
    }
}

/// The decoded `ct` of a record text.
fn parse_record(record: &str) -> Result<Vec<u8>, CryptoError> {
    let wire: RecordWire<'_> = serde_json::from_str(record).map_err(|_| CryptoError)?;
    if wire.event != "encrypted" {
        return Err(CryptoError);
    }
    STANDARD.decode(wire.data.ct).map_err(|_| CryptoError)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [0x42; 32];

    fn pair(seq: u64) -> (Sealer, Opener) {
        let d = Direction::ServerToClient;
        (
            Sealer::from_secret_for_testing(SECRET, d, seq).expect("sealer"),
            Opener::from_secret_for_testing(SECRET, d, seq).expect("opener"),
        )
    }

    #[test]
    fn round_trip_in_order() {
        let (mut s, mut o) = pair(0);
        for i in 0..5u8 {
            let frame = vec![i; usize::from(i) * 10];
            let rec = s.seal(&frame).expect("seal");
            assert!(rec.starts_with(RECORD_HEAD) && rec.ends_with(RECORD_TAIL));
            assert_eq!(o.open(&rec).expect("open"), frame);
        }
        assert_eq!((s.next_seq(), o.next_seq()), (5, 5));
    }

    /// Sealing into a buffer appends exactly `sealed_len` bytes of the same record text, at
    /// every length around the base64 steps, and records so appended open in order.
    #[test]
    fn seal_into_appends_the_record_text() {
        let (mut s, mut o) = pair(0);
        let (mut s2, _) = pair(0);
        let mut out = b"kept".to_vec();
        for len in 0..700usize {
            let frame: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let start = out.len();
            s.seal_into(&frame, &mut out).expect("seal");
            let text = std::str::from_utf8(&out[start..]).expect("ASCII");
            assert_eq!(Some(text.len()), Sealer::sealed_len(len), "len {len}");
            assert_eq!(text, s2.seal(&frame).expect("seal"), "len {len}");
            assert_eq!(o.open(text).expect("open"), frame, "len {len}");
        }
        assert!(out.starts_with(b"kept"));
    }

    #[test]
    fn same_frame_seals_differently_per_seq() {
        let (mut s, _) = pair(0);
        assert_ne!(s.seal(b"x").expect("seal"), s.seal(b"x").expect("seal"));
    }

    #[test]
    fn failure_poisons_the_opener() {
        let (mut s, mut o) = pair(0);
        let good = s.seal(b"one").expect("seal");
        assert!(o.open("garbage").is_err());
        assert!(o.is_poisoned());
        assert!(o.open(&good).is_err(), "a poisoned opener opens nothing");
    }

    #[test]
    fn record_shape_is_strict() {
        let (mut s, _) = pair(0);
        let rec = s.seal(b"{}").expect("seal");
        let ct = rec
            .trim_start_matches(RECORD_HEAD)
            .trim_end_matches(RECORD_TAIL);
        let variants = [
            format!(r#"{{"event":"encrypted","data":{{"ct":"{ct}","iv":"AAAA"}}}}"#),
            format!(r#"{{"event":"encrypted","data":{{"ct":"{ct}"}},"id":"1"}}"#),
            format!(r#"{{"event":"encrypte","data":{{"ct":"{ct}"}}}}"#),
            format!(r#"{{"event":"encrypted","data":{{"ct":"{}"}}}}"#, &ct[1..]),
            format!(r#"{{"event":"encrypted","data":{{"ct":"{ct}"}}}}x"#),
            r#"{"event":"encrypted","data":{"ct":""}}"#.to_owned(),
            r#"{"event":"encrypted","data":{"ct":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#.to_owned(),
        ];
        for v in variants {
            let (_, mut o) = pair(0);
            assert!(o.open(&v).is_err(), "{v}");
        }
        let (_, mut o) = pair(0);
        assert_eq!(
            o.open(&format!(
                r#" {{ "data" : {{ "ct" : "{ct}" }}, "event" : "encrypted" }} "#
            ))
            .expect("whitespace and field order are JSON's business"),
            b"{}"
        );
    }

    #[test]
    fn rekeys_at_the_interval_on_both_sides() {
        let (mut s, mut o) = pair(REKEY_INTERVAL - 2);
        for _ in 0..4 {
            let rec = s.seal(b"across the epoch boundary").expect("seal");
            assert_eq!(o.open(&rec).expect("open"), b"across the epoch boundary");
        }
        // A peer that did not rekey cannot open a record of the new epoch.
        let (mut s, _) = pair(REKEY_INTERVAL - 1);
        s.seal(b"last of epoch 0").expect("seal");
        let first_of_epoch_1 = s.seal(b"first of epoch 1").expect("seal");
        let mut stale =
            Opener::from_secret_for_testing(SECRET, Direction::ServerToClient, 0).expect("opener");
        // Same secret, but treated as epoch 1's: the rekeyed sealer used next(SECRET).
        stale.layer.seq = REKEY_INTERVAL;
        stale.layer.epoch_end = 2 * REKEY_INTERVAL;
        assert!(stale.open(&first_of_epoch_1).is_err());
    }

    #[test]
    fn hard_limit() {
        let (mut s, mut o) = pair(MAX_RECORDS - 1);
        let last = s.seal(b"last").expect("the last record");
        assert_eq!(o.open(&last).expect("open"), b"last");
        assert!(s.seal(b"one too many").is_err());
        assert!(s.seal(b"and ever after").is_err());
        let (_, mut o2) = pair(MAX_RECORDS);
        assert!(o2.open(&last).is_err());
        assert!(o.open(&last).is_err());
    }
}
