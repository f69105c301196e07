//! Signal-file decoding for [`super::RecordReader`]: a block source over the file
//! (memory-mapped when it is larger than a block, read into a buffer otherwise),
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
//! only in how many frames they ask for at a time. The loops of aligned files are
//! compiled twice, for any x86-64 and for AVX-512, and the build the CPU can run is
//! chosen per block ([`decode_aligned`]).

use super::{invalid_value, SignalSpec};
use memmap2::Mmap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::slice::ChunksExact;

/// Bytes decoded from a signal file at a time (rounded down to whole frames):
/// large enough that system calls (for a file that is read) are rare, small enough
/// that the block is still in the L2 cache while each of its signals is decoded.
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

/// Files longer than this are memory-mapped; shorter ones are read into a buffer
/// (mapping costs two system calls and page-table work, which only pays off when
/// it saves copying more than a block).
const MAP_MIN_BYTES: u64 = BLOCK_BYTES as u64;

/// A signal file's bytes, handed out in blocks of whole units.
struct Source {
    bytes: Bytes,
    /// Most bytes handed out at a time: a whole number of units, at least one.
    block: usize,
}

enum Bytes {
    /// Read with `read(2)` into a buffer of `block` bytes that is reused.
    Read {
        file: File,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        eof: bool,
    },
    /// The whole file mapped read-only: decoding reads the page cache in place,
    /// saving the copy into a buffer (a third of the time of reading MIT-BIH).
    Mapped { map: Mmap, pos: usize },
}

impl Source {
    /// Opens the bytes of `file` (of `file_len` bytes) from `offset` on. `unit` is
    /// the size of the pieces the file is consumed in (a frame, for an aligned
    /// file); blocks hold a whole number of them, at least one, and about the bytes
    /// left for a short file.
    fn open(file: File, offset: u64, file_len: u64, unit: usize) -> io::Result<Source> {
        let bytes_left = file_len.saturating_sub(offset);
        let unit = unit.max(1);
        let want = (bytes_left.min(BLOCK_BYTES as u64) as usize).max(1);
        let block = want.div_ceil(unit).max(1) * unit;
        if bytes_left > MAP_MIN_BYTES {
            // SAFETY: a mapping of a file that is truncated or written while it is
            // mapped breaks Rust's guarantees (a truncation kills the process with
            // SIGBUS; a write changes bytes behind a shared reference). WFDB signal
            // files are read-only inputs, written once and never modified in place:
            // this crate's `write_record` and its downloader (`fetch`) write a new
            // file and rename it into place, which leaves a mapping of the old file
            // intact. The mapping lives only as long as this reader. Tools such as
            // ripgrep make the same trade; small files are read instead.
            if let Ok(map) = unsafe { Mmap::map(&file) } {
                // Not `offset as usize`: the offset may lie past the end (no data).
                let pos = usize::try_from(offset).map_or(map.len(), |o| o.min(map.len()));
                return Ok(Source {
                    bytes: Bytes::Mapped { map, pos },
                    block,
                });
            }
            // A file system that cannot map files: read it instead.
        }
        let mut file = file;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        Ok(Source {
            bytes: Bytes::Read {
                file,
                buf: vec![0; block],
                start: 0,
                end: 0,
                eof: false,
            },
            block,
        })
    }

    /// Makes at least `n` (at most a block's) bytes available unless the file ends
    /// first; returns the bytes available (at most a block).
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        match &mut self.bytes {
            Bytes::Mapped { map, pos } => Ok(&map[*pos..map.len().min(*pos + self.block)]),
            Bytes::Read {
                file,
                buf,
                start,
                end,
                eof,
            } => {
                if *end - *start < n && !*eof {
                    buf.copy_within(*start..*end, 0);
                    *end -= *start;
                    *start = 0;
                    while *end < n.min(buf.len()) {
                        match file.read(&mut buf[*end..]) {
                            Ok(0) => {
                                *eof = true;
                                break;
                            }
                            Ok(k) => *end += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(&buf[*start..*end])
            }
        }
    }

    /// Marks `n` bytes of those [`fill`](Self::fill) returned as used.
    fn consume(&mut self, n: usize) {
        match &mut self.bytes {
            Bytes::Mapped { pos, .. } => *pos += n,
            Bytes::Read { start, .. } => *start += n,
        }
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
    /// Decodes `file` (of `file_len` bytes) from byte `offset` on. `prev` is each
    /// frame position's initial value (used by format 8).
    pub(super) fn new(
        format: u16,
        frame_len: usize,
        file: File,
        offset: u64,
        file_len: u64,
        prev: Vec<i32>,
    ) -> io::Result<FileDecoder> {
        let frame_bytes = aligned_frame_bytes(format, frame_len);
        Ok(FileDecoder {
            format,
            frame_len,
            frame_bytes,
            src: Source::open(file, offset, file_len, frame_bytes.unwrap_or(1))?,
            stream: Stream {
                bytes: Vec::new(),
                samples: Vec::new(),
                pending: [0; 3],
                pending_len: 0,
                pending_pos: 0,
                prev,
                frame_pos: 0,
            },
        })
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
                    decode_aligned(self.format, &avail[..k * fb], fb, cols);
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

/// Decodes a block of whole frames of a frame-aligned file into `cols`.
///
/// On an x86-64 CPU with AVX-512 this runs the same code compiled a second time
/// for those instructions ([`decode_aligned_avx512`]): the compiler then
/// vectorises the loops (the 212 unpacking with byte shuffles, the table lookups
/// with gathers), which halves the time to decode MIT-BIH. Other CPUs run the
/// baseline build; the results are the same.
fn decode_aligned(format: u16, block: &[u8], fb: usize, cols: &mut [Column<'_>]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: the CPU has every feature the function is compiled for (checked
        // just above; the checks are cached loads).
        return unsafe { decode_aligned_avx512(format, block, fb, cols) };
    }
    decode_aligned_any(format, block, fb, cols)
}

/// [`decode_aligned_any`] compiled for AVX-512 (see [`decode_aligned`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn decode_aligned_avx512(format: u16, block: &[u8], fb: usize, cols: &mut [Column<'_>]) {
    decode_aligned_any(format, block, fb, cols)
}

/// The decoding of [`decode_aligned`]; everything it calls in the loops is
/// inlined, so that it is compiled for the caller's instruction set.
#[inline(always)]
fn decode_aligned_any(format: u16, block: &[u8], fb: usize, cols: &mut [Column<'_>]) {
    if !pair212(format, block, cols) {
        for c in cols.iter_mut() {
            aligned_column(format, block, fb, c);
        }
    }
}

/// Decodes one signal of a block of whole frames.
#[inline(always)]
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
#[inline(always)]
fn pair212(format: u16, block: &[u8], cols: &mut [Column<'_>]) -> bool {
    let [c0, c1] = cols else { return false };
    let (Some((v0, Phys::Table12(t0))), Some((v1, Phys::Table12(t1)))) = (&mut c0.out, &mut c1.out) else {
        return false;
    };
    if format != 212 || (c0.pos, c0.spf, c1.pos, c1.spf) != (0, 1, 1, 1) {
        return false;
    }
    let (t0, t1): (&[f32; 4096], &[f32; 4096]) = (t0, t1);
    let (frames, _) = block.as_chunks::<3>();
    let n = frames.len();
    let sums = unpack212_pair(frames, (t0, t1), (spare(v0, n), spare(v1, n)), (*c0.sum, *c1.sum));
    // SAFETY: `unpack212_pair` wrote all `n` slots of both.
    unsafe { commit(v0, n) };
    unsafe { commit(v1, n) };
    (*c0.sum, *c1.sum) = sums;
    true
}

/// The loop of [`pair212`]: for each 3-byte frame, both samples, added to the
/// checksums (starting from the third argument) and stored, converted by the
/// tables, in the frame's slot of each output (all slots written). Returns the
/// checksums. A function of its own so that the outputs are `&mut` parameters,
/// known not to overlap the tables or each other: that is what lets the compiler
/// vectorise the loop.
#[inline(always)]
fn unpack212_pair(
    frames: &[[u8; 3]],
    (t0, t1): (&[f32; 4096], &[f32; 4096]),
    (d0, d1): (&mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]),
    (mut s0, mut s1): (i32, i32),
) -> (i32, i32) {
    assert!(d0.len() == frames.len() && d1.len() == frames.len());
    for ((f, a), b) in frames.iter().zip(d0).zip(d1) {
        let (x0, x1) = (first212(f, 0), second212(f, 0));
        s0 = s0.wrapping_add(x0);
        s1 = s1.wrapping_add(x1);
        a.write(t0[(x0 & 0xfff) as usize]);
        b.write(t1[(x1 & 0xfff) as usize]);
    }
    (s0, s1)
}

/// The `n` slots after the end of `v`, to be written and then added to it with
/// [`commit`] (writing them in place saves the pass of `resize`'s zero-filling).
#[inline(always)]
fn spare(v: &mut Vec<f32>, n: usize) -> &mut [MaybeUninit<f32>] {
    v.reserve(n);
    &mut v.spare_capacity_mut()[..n]
}

/// Adds the `n` slots of [`spare`] to `v`.
///
/// # Safety
/// All `n` slots must have been written since `spare(v, n)`.
#[inline(always)]
unsafe fn commit(v: &mut Vec<f32>, n: usize) {
    // SAFETY: `spare` reserved the capacity, the caller initialised the slots.
    unsafe { v.set_len(v.len() + n) }
}

/// The inner loop: for each frame, the signal's sample; adds it to the checksum and,
/// if the signal is wanted, stores its physical value at the end of the vector.
#[inline(always)]
fn run<T, G: Fn(&[T]) -> i32>(frames: ChunksExact<'_, T>, get: G, c: &mut Column<'_>) {
    let mut sum = *c.sum;
    let n = frames.len();
    let Some((v, phys)) = &mut c.out else {
        for f in frames {
            sum = sum.wrapping_add(get(f));
        }
        *c.sum = sum;
        return;
    };
    let d = spare(v, n);
    // Each loop writes one slot per frame: `zip` pairs the `n` slots with the `n` frames.
    match **phys {
        Phys::Table12(ref t) => {
            let t: &[f32; 4096] = t;
            for (d, f) in d.iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                d.write(t[(x & 0xfff) as usize]);
            }
        }
        Phys::Recip { base, recip, invalid } => {
            for (d, f) in d.iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                let y = ((x as f64 - base) * recip) as f32;
                d.write(if Some(x) == invalid { f32::NAN } else { y });
            }
        }
        Phys::Div { base, gain, invalid } => {
            for (d, f) in d.iter_mut().zip(frames) {
                let x = get(f);
                sum = sum.wrapping_add(x);
                d.write(if Some(x) == invalid {
                    f32::NAN
                } else {
                    ((x as f64 - base) / gain) as f32
                });
            }
        }
    }
    // SAFETY: the loop above wrote all `n` slots (one per frame).
    unsafe { commit(v, n) };
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

    /// Pseudo-random bytes.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The AVX-512 build of the aligned loops (which `decode_aligned` runs on a CPU
    /// that has it) and the baseline build give the same values and checksums, for
    /// each aligned format and conversion, selected signals or not.
    #[test]
    fn both_builds_decode_alike() {
        let bytes = noise(30_000);
        for (format, frame_len) in [(212, 2), (212, 4), (16, 3), (61, 2), (80, 2), (24, 2), (32, 2)] {
            let fb = aligned_frame_bytes(format, frame_len).unwrap();
            let block = &bytes[..bytes.len() / fb * fb];
            // Gains giving each conversion (a table for 212), and an unselected signal.
            let phys: Vec<Option<Phys>> = (0..frame_len)
                .map(|k| match k {
                    0 => Some(Phys::new(&spec(format, 200.0, 1024))),
                    1 if frame_len > 2 => None,
                    _ => Some(Phys::new(&spec(format, 12.3, -7))),
                })
                .collect();
            type Decode = fn(u16, &[u8], usize, &mut [Column<'_>]);
            let decode_with = |f: Decode| {
                let mut sums = vec![0i32; frame_len];
                let mut outs = vec![Vec::new(); frame_len];
                let mut cols: Vec<Column<'_>> = sums
                    .iter_mut()
                    .zip(&mut outs)
                    .zip(&phys)
                    .enumerate()
                    .map(|(pos, ((sum, out), p))| Column {
                        pos,
                        spf: 1,
                        sum,
                        out: p.as_ref().map(|p| (out, p)),
                    })
                    .collect();
                f(format, block, fb, &mut cols);
                drop(cols);
                let bits: Vec<Vec<u32>> = outs.iter().map(|v| v.iter().map(|x| x.to_bits()).collect()).collect();
                (bits, sums)
            };
            let (want, got) = (decode_with(decode_aligned_any), decode_with(decode_aligned));
            assert_eq!(want, got, "format {format}, {frame_len} signals");
            assert_eq!(want.0[0].len(), block.len() / fb);
        }
    }

    /// A mapped file hands out its bytes from the offset on, in blocks of whole
    /// units; an offset past the end gives no bytes.
    #[test]
    fn mapped_source_blocks() {
        let dir = crate::testutil::TempDir::new("map");
        let path = dir.path().join("m.dat");
        let bytes = noise(3 * BLOCK_BYTES + 5);
        std::fs::write(&path, &bytes).unwrap();
        let len = bytes.len() as u64;
        for (offset, unit) in [(0, 3), (7, 6), (BLOCK_BYTES as u64 - 1, 1)] {
            let mut src = Source::open(File::open(&path).unwrap(), offset, len, unit).unwrap();
            assert!(matches!(src.bytes, Bytes::Mapped { .. }));
            let block = src.block;
            assert!(block.is_multiple_of(unit));
            let mut got = Vec::new();
            loop {
                let avail = src.fill(unit).unwrap();
                assert!(avail.len() <= block);
                if avail.is_empty() {
                    break;
                }
                let k = avail.len();
                got.extend_from_slice(avail);
                src.consume(k);
            }
            assert_eq!(got, &bytes[offset as usize..], "offset {offset}");
        }
        let mut src = Source::open(File::open(&path).unwrap(), len + 10, len, 3).unwrap();
        assert!(src.fill(3).unwrap().is_empty());
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
