//! Signal-file decoding for [`super::RecordReader`]: a block reader over the file,
//! the digital-to-physical conversion, and the decoding loops.
//!
//! Two ways through a file, chosen once per file when it is opened:
//! - *frame-aligned* files (formats 16, 61, 80, 24 and 32, and 212 with an even
//!   number of samples per frame, which is MIT-BIH's layout): every frame is a whole
//!   number of bytes, so each signal is decoded straight from a block of bytes, one
//!   signal at a time, in one pass that adds it to the checksum, converts it to
//!   physical units and appends it to the caller's vector (a two-signal 212 file
//!   has both its signals decoded in the same pass);
//! - *streamed* files (format 8, 310, and 212 with an odd frame): samples are
//!   decoded into a small `i32` block first, then taken per signal the same way.
//!
//! The chunked reader and the whole-record reader both go through here; they differ
//! only in how many frames they ask for at a time.

use super::{invalid_value, SignalSpec};
use std::fs::File;
use std::io::{self, Read};
use std::slice::ChunksExact;

/// Bytes read from a signal file at a time (rounded down to whole frames): large
/// enough that system calls are rare, small enough that the block is still in the
/// L2 cache while each of its signals is decoded.
const BLOCK_BYTES: usize = 1 << 17;

/// Samples decoded at a time by a streamed file (its `i32` block: 128 KiB).
const STREAM_SAMPLES: usize = 1 << 15;

/// How one signal's digital samples become physical units, bit for bit as
/// [`SignalSpec::to_physical`] computes them: `((adc - baseline) / gain) as f32` in
/// `f64`, invalid-sample markers as NaN.
#[derive(Debug, Clone)]
pub(super) enum Phys {
    /// Format 212: the values of the 4096 possible 12-bit codes (exact by
    /// construction), one load per sample.
    Table12(Box<[f32; 4096]>),
    /// `(adc - baseline) * (1 / gain)`: the same `f32` as the division whenever the
    /// gain is an integer of magnitude at most 2^25 and `|adc - baseline| < 2^24`
    /// (see [`Phys::new`]); a multiplication is much cheaper than a division.
    Recip {
        base: f64,
        recip: f64,
        invalid: Option<i32>,
    },
    /// `(adc - baseline) / gain`, for other gains.
    Div { base: f64, gain: f64, invalid: Option<i32> },
}

impl Phys {
    /// The conversion of `spec`'s samples.
    ///
    /// Why multiplying by the reciprocal gives the division's `f32`: let
    /// `x = adc - baseline`, an integer with `|x| < 2^24`, `g` the gain, an integer
    /// with `1 <= |g| <= 2^25`, and `q = x / g`. Both `fl(x / g)` and
    /// `fl(x * fl(1 / g))` lie within a relative 2^-52 (and a hair) of `q`; they round
    /// to different `f32` values only if `q` is an `f32` rounding midpoint or one lies
    /// between them. `q` is no midpoint (a midpoint has 25 significant bits; `q`, if
    /// dyadic, is `(x / g_odd) / 2^a` with `|x / g_odd| < 2^24`). A midpoint near `q`
    /// is `M = m * 2^(k-24)`, `m` odd, `k <= 24` its binade, so
    /// `|q - M| = |x * 2^(24-k) - m * g| / (|g| * 2^(24-k))` with a nonzero integer
    /// numerator: relative to `q` at least `1 / (|g| * 2^26) >= 2^-51`, more than
    /// either error. `tests::reciprocal_is_exact` also checks it exhaustively for the
    /// 12- and 16-bit formats over a range of gains and baselines.
    pub(super) fn new(spec: &SignalSpec) -> Phys {
        let gain = spec.effective_gain();
        let base = spec.baseline as f64;
        let invalid = invalid_value(spec.format);
        if spec.format == 212 {
            let mut t = Box::new([0f32; 4096]);
            for (code, v) in t.iter_mut().enumerate() {
                let x = ((code as i32) << 20) >> 20; // the 12-bit code, sign-extended
                *v = if Some(x) == invalid {
                    f32::NAN
                } else {
                    spec.to_physical(x)
                };
            }
            return Phys::Table12(t);
        }
        let (lo, hi) = value_range(spec.format);
        let reach = (lo as f64 - base).abs().max((hi as f64 - base).abs());
        if gain.fract() == 0.0 && gain.abs() >= 1.0 && gain.abs() <= (1u32 << 25) as f64 && reach < (1u32 << 24) as f64
        {
            Phys::Recip {
                base,
                recip: 1.0 / gain,
                invalid,
            }
        } else {
            Phys::Div { base, gain, invalid }
        }
    }
}

/// The smallest and largest value a format stores.
fn value_range(format: u16) -> (i64, i64) {
    match format {
        80 => (-128, 127),
        212 => (-2048, 2047),
        310 => (-512, 511),
        24 => (-(1 << 23), (1 << 23) - 1),
        // Format 8 stores differences: its running sum can drift anywhere in i32.
        8 | 32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (-32768, 32767),
    }
}

/// Samples held by `bytes` bytes of a format's stream (a 212 stream may end with a
/// lone sample in 2 bytes; other partial groups hold none).
pub(super) fn samples_in(format: u16, bytes: u64) -> u64 {
    match format {
        8 | 80 => bytes,
        16 | 61 => bytes / 2,
        24 => bytes / 3,
        32 => bytes / 4,
        212 => bytes / 3 * 2 + u64::from(bytes % 3 == 2),
        310 => bytes / 4 * 3,
        _ => 0,
    }
}

/// Bytes per frame of a frame-aligned file, or `None` if the file must be streamed.
pub(super) fn aligned_frame_bytes(format: u16, frame_len: usize) -> Option<usize> {
    match format {
        16 | 61 => Some(2 * frame_len),
        80 => Some(frame_len),
        24 => Some(3 * frame_len),
        32 => Some(4 * frame_len),
        212 if frame_len.is_multiple_of(2) => Some(frame_len / 2 * 3),
        _ => None,
    }
}

/// A signal file read in blocks into a buffer that is reused.
struct Source {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl Source {
    /// `unit` is the size of the pieces the file is consumed in (a frame, for an
    /// aligned file); the buffer holds a whole number of them, at least one, and
    /// about `file_bytes` (the bytes left to read) for a short file.
    fn new(file: File, unit: usize, file_bytes: u64) -> Source {
        let unit = unit.max(1);
        let want = (file_bytes.min(BLOCK_BYTES as u64) as usize).max(1);
        let size = want.div_ceil(unit).max(1) * unit;
        Source {
            file,
            buf: vec![0; size],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Makes at least `n` (at most the buffer's size) bytes available unless the
    /// file ends first; returns the bytes available.
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.start < n && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n.min(self.buf.len()) {
                match self.file.read(&mut self.buf[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Copies up to `out.len()` bytes out; fewer only at the end of the file.
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            let avail = self.fill(1)?;
            if avail.is_empty() {
                break;
            }
            let k = avail.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&avail[..k]);
            self.consume(k);
            n += k;
        }
        Ok(n)
    }
}

/// One signal of a file, as the decoding loops see it.
pub(super) struct Column<'a> {
    /// Position of the signal's first sample in a frame.
    pub pos: usize,
    /// Samples per frame of this signal.
    pub spf: usize,
    /// The running checksum (wrapping sum of the digital samples).
    pub sum: &'a mut i32,
    /// Where its physical values go, if it is wanted, and how to convert them.
    pub out: Option<(&'a mut Vec<f32>, &'a Phys)>,
}

/// What decoding some frames of one file found.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Decoded {
    /// Complete frames decoded (each column got them all).
    pub frames: usize,
    /// Samples of an incomplete last frame, when the file ends inside one.
    pub partial: usize,
}

/// Decodes one file's interleaved samples.
pub(super) struct FileDecoder {
    format: u16,
    frame_len: usize,
    /// `Some(bytes per frame)` for a frame-aligned file.
    frame_bytes: Option<usize>,
    src: Source,
    stream: Stream,
}

impl FileDecoder {
    /// `prev` is each frame position's initial value (used by format 8).
    pub(super) fn new(format: u16, frame_len: usize, file: File, file_bytes: u64, prev: Vec<i32>) -> FileDecoder {
        let frame_bytes = aligned_frame_bytes(format, frame_len);
        FileDecoder {
            format,
            frame_len,
            frame_bytes,
            src: Source::new(file, frame_bytes.unwrap_or(1), file_bytes),
            stream: Stream {
                bytes: Vec::new(),
                samples: Vec::new(),
                pending: [0; 3],
                pending_len: 0,
                pending_pos: 0,
                prev,
                frame_pos: 0,
            },
        }
    }

    /// Decodes up to `want` frames (fewer only at the end of the file) into `cols`.
    pub(super) fn decode(&mut self, want: usize, cols: &mut [Column<'_>]) -> io::Result<Decoded> {
        let mut done = Decoded::default();
        match self.frame_bytes {
            Some(fb) => {
                while done.frames < want {
                    let avail = self.src.fill(fb)?;
                    if avail.len() < fb {
                        // The end of the file: whole frames only.
                        done.partial = samples_in(self.format, avail.len() as u64) as usize;
                        break;
                    }
                    let k = (avail.len() / fb).min(want - done.frames);
                    let block = &avail[..k * fb];
                    if !pair212(self.format, block, cols) {
                        for c in cols.iter_mut() {
                            aligned_column(self.format, block, fb, c);
                        }
                    }
                    self.src.consume(k * fb);
                    done.frames += k;
                }
            }
            None => {
                let fl = self.frame_len;
                let per_block = (STREAM_SAMPLES / fl).max(1);
                while done.frames < want {
                    let k = per_block.min(want - done.frames);
                    let s = &mut self.stream;
                    s.samples.clear();
                    let got = s.decode(self.format, k * fl, &mut self.src)?;
                    let whole = got / fl;
                    let block = &s.samples[..whole * fl];
                    for c in cols.iter_mut() {
                        let frames = block.chunks_exact(fl);
                        if c.spf == 1 {
                            let p = c.pos;
                            run(frames, move |f: &[i32]| f[p], c);
                        } else {
                            run_multi(frames, c, |f, j| f[j]);
                        }
                    }
                    done.frames += whole;
                    if whole < k {
                        done.partial = got % fl;
                        break;
                    }
                }
            }
        }
        Ok(done)
    }
}

// Digital samples at a byte offset of a frame, per format.
#[inline(always)]
fn le16(f: &[u8], o: usize) -> i32 {
    i16::from_le_bytes([f[o], f[o + 1]]) as i32
}
#[inline(always)]
fn be16(f: &[u8], o: usize) -> i32 {
    i16::from_be_bytes([f[o], f[o + 1]]) as i32
}
#[inline(always)]
fn off8(f: &[u8], o: usize) -> i32 {
    f[o] as i32 - 128
}
#[inline(always)]
fn le24(f: &[u8], o: usize) -> i32 {
    i32::from_le_bytes([0, f[o], f[o + 1], f[o + 2]]) >> 8
}
#[inline(always)]
fn le32(f: &[u8], o: usize) -> i32 {
    i32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]])
}
/// Format 212, first sample of the 3-byte group at `o`: byte 0 and the low nibble of byte 1.
#[inline(always)]
fn first212(f: &[u8], o: usize) -> i32 {
    (((f[o] as i32) << 20) | ((f[o + 1] as i32 & 0x0f) << 28)) >> 20
}
/// Format 212, second sample: byte 2 and the high nibble of byte 1.
#[inline(always)]
fn second212(f: &[u8], o: usize) -> i32 {
    (((f[o + 2] as i32) << 20) | ((f[o + 1] as i32 & 0xf0) << 24)) >> 20
}

/// The sample at position `p` of a frame of an aligned file.
fn sample_at(format: u16, f: &[u8], p: usize) -> i32 {
    match format {
        16 => le16(f, 2 * p),
        61 => be16(f, 2 * p),
        80 => off8(f, p),
        24 => le24(f, 3 * p),
        32 => le32(f, 4 * p),
        212 if p.is_multiple_of(2) => first212(f, p / 2 * 3),
        212 => second212(f, p / 2 * 3),
        _ => unreachable!("aligned formats only"),
    }
}

/// Decodes one signal of a block of whole frames.
fn aligned_column(format: u16, block: &[u8], fb: usize, c: &mut Column<'_>) {
    let frames = block.chunks_exact(fb);
    if c.spf != 1 {
        return run_multi(frames, c, |f, p| sample_at(format, f, p));
    }
    let p = c.pos;
    // One loop per format, with the sample's byte offset fixed for the whole block.
    match format {
        16 => run(frames, move |f| le16(f, 2 * p), c),
        61 => run(frames, move |f| be16(f, 2 * p), c),
        80 => run(frames, move |f| off8(f, p), c),
        24 => run(frames, move |f| le24(f, 3 * p), c),
        32 => run(frames, move |f| le32(f, 4 * p), c),
        212 => {
            let o = p / 2 * 3;
            if p.is_multiple_of(2) {
                run(frames, move |f| first212(f, o), c)
            } else {
                run(frames, move |f| second212(f, o), c)
            }
        }
        _ => unreachable!("aligned formats only"),
    }
}

/// Format 212 with two signals, both wanted (MIT-BIH's layout, and many other
/// PhysioNet databases'): each 3-byte frame gives both samples, so both signals are
/// decoded in a single pass. Returns `false` (doing nothing) for other layouts.
fn pair212(format: u16, block: &[u8], cols: &mut [Column<'_>]) -> bool {
    let [c0, c1] = cols else { return false };
    let (Some((v0, Phys::Table12(t0))), Some((v1, Phys::Table12(t1)))) = (&mut c0.out, &mut c1.out) else {
        return false;
    };
    if format != 212 || (c0.pos, c0.spf, c1.pos, c1.spf) != (0, 1, 1, 1) {
        return false;
    }
    let (t0, t1): (&[f32; 4096], &[f32; 4096]) = (t0, t1);
    let n = block.len() / 3;
    let (d0, d1) = (grow(v0, n), grow(v1, n));
    // Two frames (6 bytes: two loads) at a time, then a lone last frame.
    let (pairs, last) = block.as_chunks::<6>();
    let (d0p, d0l) = d0.as_chunks_mut::<2>();
    let (d1p, d1l) = d1.as_chunks_mut::<2>();
    let (mut s0, mut s1) = (*c0.sum, *c1.sum);
    let sx = |code: u32| ((code << 20) as i32) >> 20;
    for ((f, a), b) in pairs.iter().zip(d0p).zip(d1p) {
        let lo = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        let hi = u16::from_le_bytes([f[4], f[5]]) as u32;
        let a0 = lo & 0xfff;
        let a1 = ((lo >> 16) & 0xff) | ((lo >> 4) & 0xf00);
        let b0 = (lo >> 24) | ((hi & 0x0f) << 8);
        let b1 = (hi >> 8) | ((hi & 0xf0) << 4);
        s0 = s0.wrapping_add(sx(a0)).wrapping_add(sx(b0));
        s1 = s1.wrapping_add(sx(a1)).wrapping_add(sx(b1));
        *a = [t0[a0 as usize], t0[b0 as usize]];
        *b = [t1[a1 as usize], t1[b1 as usize]];
    }
    if let ([a], [b]) = (d0l, d1l) {
        let (x0, x1) = (first212(last, 0), second212(last, 0));
        s0 = s0.wrapping_add(x0);
        s1 = s1.wrapping_add(x1);
        *a = t0[(x0 & 0xfff) as usize];
        *b = t1[(x1 & 0xfff) as usize];
    }
    (*c0.sum, *c1.sum) = (s0, s1);
    true
}

/// `n` more elements at the end of `v`, to be overwritten.
fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    let start = v.len();
    v.resize(start + n, 0.0);
    &mut v[start..]
}

/// The inner loop: for each frame, the signal's sample; adds it to the checksum and,
/// if the signal is wanted, stores its physical value at the end of the vector.
#[inline(always)]
fn run<T, G: Fn(&[T]) -> i32>(frames: ChunksExact<'_, T>, get: G, c: &mut Column<'_>) {
    let mut sum = *c.sum;
    match &mut c.out {
        None => {
            for f in frames {
                sum = sum.wrapping_add(get(f));
            }
        }
        Some((v, Phys::Table12(t))) => {
            let t: &[f32; 4096] = t;
            for (d, f) in grow(v, frames.len()).iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                *d = t[(x & 0xfff) as usize];
            }
        }
        Some((v, &Phys::Recip { base, recip, invalid })) => {
            for (d, f) in grow(v, frames.len()).iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                let y = ((x as f64 - base) * recip) as f32;
                *d = if Some(x) == invalid { f32::NAN } else { y };
            }
        }
        Some((v, &Phys::Div { base, gain, invalid })) => {
            for (d, f) in grow(v, frames.len()).iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                *d = if Some(x) == invalid {
                    f32::NAN
                } else {
                    ((x as f64 - base) / gain) as f32
                };
            }
        }
    }
    *c.sum = sum;
}

/// The loop for a signal with several samples per frame (rare; kept simple).
fn run_multi<T>(frames: ChunksExact<'_, T>, c: &mut Column<'_>, get: impl Fn(&[T], usize) -> i32) {
    for f in frames {
        for p in c.pos..c.pos + c.spf {
            let x = get(f, p);
            *c.sum = c.sum.wrapping_add(x);
            if let Some((v, phys)) = &mut c.out {
                v.push(convert(phys, x));
            }
        }
    }
}

/// One sample's physical value (the loops above inline the same arithmetic).
fn convert(phys: &Phys, x: i32) -> f32 {
    match *phys {
        Phys::Table12(ref t) => t[(x & 0xfff) as usize],
        Phys::Recip { base, recip, invalid } => {
            if Some(x) == invalid {
                f32::NAN
            } else {
                ((x as f64 - base) * recip) as f32
            }
        }
        Phys::Div { base, gain, invalid } => {
            if Some(x) == invalid {
                f32::NAN
            } else {
                ((x as f64 - base) / gain) as f32
            }
        }
    }
}

/// The sample stream of a file whose frames are not whole bytes (310, 212 with an
/// odd frame), or whose samples depend on the previous ones (format 8).
struct Stream {
    bytes: Vec<u8>,
    samples: Vec<i32>,
    /// Samples decoded but not yet handed out (212 pairs, 310 triples).
    pending: [i32; 3],
    pending_len: usize,
    pending_pos: usize,
    /// Format 8: the previous value of each sample position in the frame.
    prev: Vec<i32>,
    /// Format 8: position in the frame of the next sample.
    frame_pos: usize,
}

impl Stream {
    /// Appends up to `count` samples to `self.samples`; returns how many were
    /// appended (fewer only at the end of the file).
    fn decode(&mut self, format: u16, count: usize, src: &mut Source) -> io::Result<usize> {
        let out = &mut self.samples;
        let start = out.len();
        while self.pending_pos < self.pending_len && out.len() - start < count {
            out.push(self.pending[self.pending_pos]);
            self.pending_pos += 1;
        }
        let need = count - (out.len() - start);
        if need == 0 {
            return Ok(count);
        }
        // Bytes and samples per group; frame-aligned formats never come here.
        let (gb, gs) = match format {
            8 => (1, 1),
            212 => (3, 2),
            310 => (4, 3),
            _ => unreachable!("streamed formats only"),
        };
        let groups = need.div_ceil(gs);
        self.bytes.resize(groups * gb, 0);
        let got = src.read_into(&mut self.bytes)?;
        let b = &self.bytes[..got];
        let sx = |v: i32, bits: u32| (v << (32 - bits)) >> (32 - bits);
        match format {
            8 => {
                let n = self.prev.len();
                for &d in b {
                    let v = self.prev[self.frame_pos].wrapping_add(d as i8 as i32);
                    self.prev[self.frame_pos] = v;
                    self.frame_pos = (self.frame_pos + 1) % n;
                    out.push(v);
                }
            }
            212 => {
                let full = b.len() / 3;
                // When an odd count was asked for and the last group is whole, its
                // second sample is kept for the next call.
                let split_last = full == groups && need % 2 == 1;
                let pairs = full - split_last as usize;
                out.reserve(2 * pairs + 1);
                for c in b[..3 * pairs].chunks_exact(3) {
                    out.push(first212(c, 0));
                    out.push(second212(c, 0));
                }
                let rest = &b[3 * pairs..];
                if split_last {
                    out.push(first212(rest, 0));
                    self.pending = [second212(rest, 0), 0, 0];
                    self.pending_len = 1;
                    self.pending_pos = 0;
                } else if rest.len() >= 2 {
                    // A final odd sample stored in 2 bytes.
                    out.push(first212(rest, 0));
                }
            }
            310 => {
                for (gi, c) in b.chunks_exact(4).enumerate() {
                    let w0 = u16::from_le_bytes([c[0], c[1]]) as i32;
                    let w1 = u16::from_le_bytes([c[2], c[3]]) as i32;
                    let s = [
                        sx((w0 >> 1) & 0x3ff, 10),
                        sx((w1 >> 1) & 0x3ff, 10),
                        sx(((w0 >> 11) & 0x1f) | (((w1 >> 11) & 0x1f) << 5), 10),
                    ];
                    let keep = if gi + 1 == groups && !need.is_multiple_of(3) {
                        need % 3
                    } else {
                        3
                    };
                    out.extend_from_slice(&s[..keep]);
                    if keep < 3 {
                        self.pending = s;
                        self.pending_len = 3;
                        self.pending_pos = keep;
                    }
                }
            }
            _ => unreachable!("streamed formats only"),
        }
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: u16, gain: f64, baseline: i32) -> SignalSpec {
        let mut s = SignalSpec::new("x.dat", format, gain, "mV", "X");
        s.baseline = baseline;
        s
    }

    /// The fast conversions give `to_physical`'s `f32`, bit for bit, for every value
    /// of the 12- and 16-bit formats (NaN for the invalid marker).
    #[test]
    fn reciprocal_is_exact() {
        let gains = [
            1.0,
            2.0,
            3.0,
            7.0,
            100.0,
            200.0,
            400.0,
            1000.0,
            1024.0,
            2000.0,
            4095.0,
            12345.0,
            65535.0,
            100003.0,
            1e6,
            33554432.0,
            -200.0,
            0.0,
            0.5,
            12.3,
            1e-3,
            1e7 + 0.5,
            1e8,
        ];
        for (format, lo, hi) in [(212u16, -2048, 2047), (16, -32768, 32767)] {
            for &gain in &gains {
                for baseline in [0, 1024, -1024, 995, 2047, -32768, 32767, 1 << 20, -(1 << 24) + 40000] {
                    let s = spec(format, gain, baseline);
                    let p = Phys::new(&s);
                    for x in lo..=hi {
                        let want = if Some(x) == invalid_value(format) {
                            f32::NAN
                        } else {
                            s.to_physical(x)
                        };
                        let got = convert(&p, x);
                        assert!(
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                            "format {format} gain {gain} baseline {baseline} x {x}: {got} vs {want} ({p:?})"
                        );
                    }
                }
            }
        }
        assert!(matches!(Phys::new(&spec(16, 200.0, 0)), Phys::Recip { .. }));
        assert!(matches!(Phys::new(&spec(16, 12.3, 0)), Phys::Div { .. }));
        assert!(matches!(Phys::new(&spec(32, 200.0, 0)), Phys::Div { .. }));
    }

    #[test]
    fn samples_in_partial_groups() {
        assert_eq!(samples_in(212, 0), 0);
        assert_eq!(samples_in(212, 1), 0);
        assert_eq!(samples_in(212, 2), 1);
        assert_eq!(samples_in(212, 3), 2);
        assert_eq!(samples_in(212, 5), 3);
        assert_eq!(samples_in(16, 5), 2);
        assert_eq!(samples_in(310, 7), 3);
        assert_eq!(aligned_frame_bytes(212, 2), Some(3));
        assert_eq!(aligned_frame_bytes(212, 3), None);
        assert_eq!(aligned_frame_bytes(16, 12), Some(24));
        assert_eq!(aligned_frame_bytes(8, 2), None);
    }
}
