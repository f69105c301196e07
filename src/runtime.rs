//! Running a validated graph as a timely dataflow.
//!
//! Every stream (record, patient) gets a route when its source lists it; every edge exchanges
//! by route, so a stream's data and its per-stream state stay on worker `route % workers`.
//! Each worker reads its own streams in a thread per source, which feeds the worker through
//! a bounded crossbeam channel (a slow dataflow blocks the reader). All of a sink's input
//! goes to worker 0, which writes the one output file.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use timely::communication::Config as CommunicationConfig;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Concatenate, Operator};
use timely::dataflow::InputHandle;
use timely::WorkerConfig;

use crate::components::{Built, Overflow, Source, Step, StreamReader, Transform};
use crate::config::OnError;
use crate::feed::{feed, wait_any, FeedReceiver, FeedSender};
use crate::graph::{Graph, Node};
use crate::message::{stream_hash, Body, Message, MessageStream};
use crate::metrics::Metrics;

/// Messages a source thread may queue ahead of its worker.
const CHANNEL_CAPACITY: usize = 64;
/// How long an idle worker waits for its readers before stepping the dataflow again.
const IDLE_WAIT: Duration = Duration::from_millis(1);
/// Messages moved from a channel into the dataflow between two worker steps.
const FEED_BATCH: usize = 256;
/// The dataflow's clock: inputs advance to a new epoch this often, so that operators that
/// wait for time to pass (the alarms' windows) report while a live run goes on.
const EPOCH: Duration = Duration::from_millis(10);

type Input = InputHandle<u64, CapacityContainerBuilder<Vec<Message>>>;

/// How to spread a run over threads and processes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads per process.
    pub workers: usize,
    /// Processes in a cluster run (1 for a single process).
    pub processes: usize,
    /// This process's index in the cluster.
    pub process: usize,
    /// `host:port` of every process, one per line, for cluster runs.
    pub hostfile: Option<PathBuf>,
    /// Draw a progress bar on standard error (only when it is a terminal).
    pub progress: bool,
    /// Live counters and latencies, for `GET /metrics` of `ecgflow serve`.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
            progress: false,
            metrics: None,
        }
    }
}

/// Counters shared by all threads of a run in this process.
#[derive(Default)]
pub struct RunStats {
    pub streams_total: AtomicU64,
    pub streams_done: AtomicU64,
    /// Samples, beats, predictions, drops and alarms: the counters `GET /metrics` shows.
    pub counts: Arc<Metrics>,
    /// Beats read from beat tables: with the samples, the progress bar's unit.
    pub source_beats: AtomicU64,
    /// Time each stage and each prediction's latency (into `counts`' histograms).
    timed: bool,
    failed: AtomicBool,
    on_error: OnError,
    errors: Mutex<Vec<String>>,
    skipped: Mutex<Vec<String>>,
    sink_lines: Mutex<Vec<String>>,
}

impl RunStats {
    fn fail(&self, message: String) {
        self.failed.store(true, Ordering::SeqCst);
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(message);
        }
    }
    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
    /// A stream failed: under `skip` it is dropped and reported, under `fail` the run stops.
    /// Returns true when the stream is skipped (and the run goes on).
    fn stream_failed(&self, message: String) -> bool {
        match self.on_error {
            OnError::Skip => {
                if let Ok(mut skipped) = self.skipped.lock() {
                    skipped.push(message);
                }
                true
            }
            OnError::Fail => {
                self.fail(message);
                false
            }
        }
    }
}

/// What a finished run did (in this process).
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub streams: u64,
    pub samples: u64,
    pub beats: u64,
    pub seconds: f64,
    /// One line per sink that had something to say (e.g. rows written).
    pub sink_lines: Vec<String>,
    /// Streams left out because they failed (`on_error = "skip"`), with the reason.
    pub skipped: Vec<String>,
    /// Streams not read because every sink already holds their complete output (resume).
    pub already_done: u64,
    /// Samples live sources dropped because the dataflow fell behind (`drop_oldest`).
    pub dropped_samples: u64,
}

impl RunSummary {
    /// A line saying how many samples live sources dropped, when they dropped any.
    pub fn dropped_note(&self) -> Option<String> {
        (self.dropped_samples > 0).then(|| {
            format!(
                "live sources dropped {} samples: the dataflow fell behind (overflow = \"drop_oldest\")",
                self.dropped_samples
            )
        })
    }
}

struct Component {
    node: Node,
    built: Built,
    /// For sources: the stream names and the route of the first one.
    streams: Vec<String>,
    route_offset: u64,
    /// For sources: streams already complete in every sink (resume), not read again.
    skip: Vec<bool>,
}

/// Runs the graph to completion.
pub fn run(graph: &Graph, options: &RunOptions) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    if options.workers == 0 || options.processes == 0 {
        bail!("--workers and --processes must be at least 1");
    }
    let mut components = Vec::new();
    let mut next_route = 0u64;
    let mut total_samples = Some(0u64);
    for node in &graph.nodes {
        let built = (node.spec.build)(&node.params).with_context(|| node.full_name())?;
        let (streams, route_offset) = match &built {
            Built::Source(source) => {
                let streams = source.streams().with_context(|| node.full_name())?;
                total_samples = total_samples.zip(source.total_samples()).map(|(a, b)| a + b);
                let offset = next_route;
                next_route += streams.len() as u64;
                (streams, offset)
            }
            _ => (Vec::new(), 0),
        };
        components.push(Component {
            node: node.clone(),
            built,
            streams,
            route_offset,
            skip: Vec::new(),
        });
    }
    // Resume: streams whose complete output every sink already holds are not read again.
    let mut done: Option<HashSet<String>> = None;
    for c in &components {
        if let Built::Sink(sink) = &c.built {
            let theirs = sink
                .completed_streams()
                .with_context(|| c.node.full_name())?
                .unwrap_or_default();
            done = Some(match done {
                None => theirs,
                Some(d) => d.intersection(&theirs).cloned().collect(),
            });
        }
    }
    let done = done.unwrap_or_default();
    let mut already_done = 0;
    for c in &mut components {
        let before = c.streams.len();
        c.skip = c.streams.iter().map(|s| done.contains(s)).collect();
        already_done += before as u64 - c.skip.iter().filter(|d| !**d).count() as u64;
    }
    let components = Arc::new(components);
    let stats = Arc::new(RunStats {
        on_error: graph.on_error,
        timed: options.metrics.is_some(),
        counts: options.metrics.clone().unwrap_or_default(),
        ..RunStats::default()
    });
    // In a cluster each process counts the streams its own workers read.
    let peers = options.workers * options.processes;
    let first_worker = options.process * options.workers;
    let skipped: Vec<bool> = components.iter().flat_map(|c| c.skip.iter().copied()).collect();
    let local = (0..next_route as usize)
        .filter(|&r| (first_worker..first_worker + options.workers).contains(&(r % peers)) && !skipped[r])
        .count();
    stats.streams_total.store(local as u64, Ordering::Relaxed);

    let progress = options
        .progress
        .then(|| crate::progress::Progress::start(stats.clone(), total_samples, options.processes > 1));
    let config = timely_config(options)?;
    let worker_stats = stats.clone();
    let guards = timely::execute(config, move |worker| run_worker(worker, &components, &worker_stats))
        .map_err(|e| anyhow!("cannot start the dataflow: {e}"))?;
    let mut panics = Vec::new();
    for result in guards.join() {
        if let Err(e) = result {
            panics.push(e);
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    if !panics.is_empty() {
        bail!("a worker failed: {}", panics.join("; "));
    }
    let errors = stats.errors.lock().map(|e| e.clone()).unwrap_or_default();
    if !errors.is_empty() {
        bail!(
            "the run failed; unfinished output files were removed:\n  {}",
            errors.join("\n  ")
        );
    }
    Ok(RunSummary {
        streams: stats.streams_done.load(Ordering::Relaxed),
        samples: stats.counts.samples.load(Ordering::Relaxed),
        beats: stats.counts.beats.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        sink_lines: stats.sink_lines.lock().map(|l| l.clone()).unwrap_or_default(),
        skipped: stats.skipped.lock().map(|l| l.clone()).unwrap_or_default(),
        already_done,
        dropped_samples: stats.counts.dropped_samples.load(Ordering::Relaxed),
    })
}

fn timely_config(options: &RunOptions) -> anyhow::Result<timely::Config> {
    if options.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let communication = if options.processes > 1 {
        if options.process >= options.processes {
            bail!(
                "--process {} is out of range for --processes {}",
                options.process,
                options.processes
            );
        }
        let addresses = match &options.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read hostfile {}", path.display()))?;
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect()
            }
            None => (0..options.processes)
                .map(|i| format!("127.0.0.1:{}", 2101 + i))
                .collect::<Vec<_>>(),
        };
        if addresses.len() < options.processes {
            bail!(
                "the hostfile lists {} address(es) but --processes is {}",
                addresses.len(),
                options.processes
            );
        }
        CommunicationConfig::Cluster {
            threads: options.workers,
            process: options.process,
            addresses: addresses[..options.processes].to_vec(),
            report: false,
            zerocopy: false,
        }
    } else if options.workers > 1 {
        CommunicationConfig::Process(options.workers)
    } else {
        CommunicationConfig::Thread
    };
    Ok(timely::Config {
        communication,
        worker: WorkerConfig::default(),
    })
}

fn run_worker(worker: &mut timely::worker::Worker, components: &Arc<Vec<Component>>, stats: &Arc<RunStats>) {
    let index = worker.index();
    let peers = worker.peers();
    let mut inputs: Vec<(usize, Input)> = Vec::new();
    worker.dataflow::<u64, _, _>(|scope| {
        let mut outputs: HashMap<String, MessageStream> = HashMap::new();
        for (i, c) in components.iter().enumerate() {
            let name = c.node.name().to_owned();
            let upstream = || {
                let streams: Vec<MessageStream> = c.node.decl.inputs.iter().map(|n| outputs[n].clone()).collect();
                scope.concatenate(streams)
            };
            match &c.built {
                Built::Source(_) => {
                    let mut input = Input::new();
                    outputs.insert(name, input.to_stream(scope));
                    inputs.push((i, input));
                }
                Built::Transform(t) if t.dataflow().is_some() => {
                    let dataflow = t.dataflow().expect("checked");
                    outputs.insert(
                        name,
                        dataflow.build(upstream(), &c.node.full_name(), stats.counts.clone()),
                    );
                }
                Built::Transform(t) if t.global() => {
                    let stream = global_operator(upstream(), c.node.full_name(), t.clone(), stats.clone());
                    outputs.insert(name, stream);
                }
                Built::Transform(t) => {
                    let stream = transform_operator(upstream(), c.node.full_name(), t.clone(), stats.clone());
                    outputs.insert(name, stream);
                }
                Built::Sink(sink) => {
                    let full = c.node.full_name();
                    let mut writer = if index == 0 {
                        match sink.open() {
                            Ok(w) => Some(w),
                            Err(e) => {
                                stats.fail(format!("{full}: {e:#}"));
                                None
                            }
                        }
                    } else {
                        None
                    };
                    let stats = stats.clone();
                    upstream().sink(
                        Exchange::new(|_: &Message| 0),
                        &full.clone(),
                        move |(input, frontier)| {
                            input.for_each(|_, data| {
                                for msg in data.drain(..) {
                                    if let Some(w) = writer.as_mut() {
                                        if let Err(e) = w.write(&msg.body) {
                                            stats.fail(format!("{full}: {e:#}"));
                                            writer = None;
                                        }
                                    }
                                }
                            });
                            if frontier.is_empty() {
                                if let Some(w) = writer.take() {
                                    // On failure elsewhere the writer is dropped: its temporary file goes.
                                    if !stats.failed() {
                                        match w.finish() {
                                            Ok(Some(line)) => {
                                                stats.sink_lines.lock().expect("lock").push(format!("{full}: {line}"))
                                            }
                                            Ok(None) => {}
                                            Err(e) => stats.fail(format!("{full}: {e:#}")),
                                        }
                                    }
                                }
                            }
                        },
                    );
                }
            }
        }
    });

    // Start a reader thread per source for the streams routed to this worker.
    let mut feeds: Vec<(FeedReceiver, Option<Input>)> = Vec::new();
    for (i, input) in inputs {
        let c = &components[i];
        let Built::Source(source) = &c.built else {
            continue;
        };
        let mine: Vec<usize> = (0..c.streams.len())
            .filter(|&j| (c.route_offset as usize + j) % peers == index && !c.skip[j])
            .collect();
        if mine.is_empty() {
            continue; // dropping the handle closes this worker's part of the input
        }
        let live = source.live();
        let (tx, rx) = match live {
            // The capacity is per stream: all of a worker's streams may send at once.
            Some(live) => feed(live.overflow, live.capacity * mine.len()),
            None => feed(Overflow::Block, CHANNEL_CAPACITY),
        };
        let reader = StreamsReader {
            source: source.clone(),
            names: c.streams.clone(),
            route_offset: c.route_offset,
            full_name: c.node.full_name(),
            tx,
            stats: stats.clone(),
            live: live.is_some(),
        };
        match live.and_then(|l| l.speed) {
            Some(speed) => std::thread::spawn(move || reader.read_paced(&mine, speed)),
            None => std::thread::spawn(move || reader.read_in_turn(&mine)),
        };
        feeds.push((rx, Some(input)));
    }

    // Move data from the feeds into the dataflow until every reader is done.
    let mut epoch = 0u64;
    let mut epoch_started = Instant::now();
    while feeds.iter().any(|(_, input)| input.is_some()) {
        let mut moved = 0;
        for (rx, slot) in feeds.iter_mut() {
            let Some(input) = slot.as_mut() else { continue };
            for _ in 0..FEED_BATCH {
                match rx.try_recv() {
                    Ok(Some(msg)) => {
                        input.send(msg);
                        moved += 1;
                    }
                    Ok(None) => break,
                    Err(_closed) => {
                        *slot = None;
                        break;
                    }
                }
            }
        }
        if moved > 0 {
            // Hand what arrived to the dataflow now rather than when the input's buffer fills.
            for input in feeds.iter_mut().filter_map(|(_, input)| input.as_mut()) {
                input.flush();
            }
        }
        if epoch_started.elapsed() >= EPOCH {
            epoch += 1;
            epoch_started = Instant::now();
            for input in feeds.iter_mut().filter_map(|(_, input)| input.as_mut()) {
                input.advance_to(epoch);
            }
        }
        worker.step();
        if moved == 0 {
            // Nothing from the readers: sleep until one sends (or briefly, so that data
            // exchanged by other workers is not left waiting), instead of spinning.
            wait_any(
                feeds.iter().filter(|(_, input)| input.is_some()).map(|(rx, _)| rx),
                IDLE_WAIT,
            );
        }
    }
    while worker.has_dataflows() {
        worker.step_or_park(None);
    }
}

/// The reader thread of one source on one worker.
struct StreamsReader {
    source: Arc<dyn Source>,
    names: Vec<String>,
    route_offset: u64,
    full_name: String,
    tx: FeedSender,
    stats: Arc<RunStats>,
    /// A live source: chunks are stamped with their arrival time (for latency metrics).
    live: bool,
}

/// Why a reader stops sending a stream.
enum Stop {
    /// The worker is gone or the run failed: stop reading altogether.
    Run,
    /// The stream failed; under `on_error = "skip"` the others go on.
    Stream(anyhow::Error),
}

impl StreamsReader {
    fn send(&self, route: u64, mut body: Body) -> Result<(), Stop> {
        if self.stats.failed() {
            return Err(Stop::Run);
        }
        let counts = &self.stats.counts;
        match &mut body {
            Body::Chunk(chunk) => {
                if self.live {
                    chunk.arrival = Some(Instant::now());
                }
                counts.samples.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Body::Beat(beat) => {
                if self.live {
                    beat.arrival = Some(Instant::now());
                }
                counts.beats.fetch_add(1, Ordering::Relaxed);
                self.stats.source_beats.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let dropped = self.tx.send(Message { route, body }).ok_or(Stop::Run)?;
        counts.dropped_samples.fetch_add(dropped, Ordering::Relaxed);
        Ok(())
    }

    /// Opens stream `j` and sends its start.
    fn start(&self, j: usize) -> Result<Box<dyn StreamReader>, Stop> {
        let reader = self.source.open(j).map_err(Stop::Stream)?;
        self.send(
            self.route_offset + j as u64,
            Body::Start {
                stream: self.names[j].clone(),
                meta: reader.meta(),
            },
        )?;
        Ok(reader)
    }

    /// The stream ended or failed (`result`); returns false when reading must stop.
    fn close(&self, j: usize, started: bool, result: Result<(), Stop>) -> bool {
        let route = self.route_offset + j as u64;
        let stream = self.names[j].clone();
        match result {
            Ok(()) => match self.send(route, Body::End { stream }) {
                Ok(()) => {
                    self.stats.streams_done.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(_) => false,
            },
            Err(Stop::Run) => false,
            Err(Stop::Stream(e)) => {
                let reason = format!("{e:#}");
                let full_name = &self.full_name;
                if !self
                    .stats
                    .stream_failed(format!("{full_name}: stream {stream}: {reason}"))
                {
                    return false;
                }
                !started || self.send(route, Body::Abort { stream, reason }).is_ok()
            }
        }
    }

    /// Reads this worker's streams one after the other, as fast as the dataflow takes them.
    fn read_in_turn(&self, mine: &[usize]) {
        for &j in mine {
            let route = self.route_offset + j as u64;
            let mut started = false;
            let result = (|| {
                let mut reader = self.start(j)?;
                started = true;
                while let Some(body) = reader.next().map_err(Stop::Stream)? {
                    self.send(route, body)?;
                }
                Ok(())
            })();
            if !self.close(j, started, result) {
                return;
            }
        }
    }

    /// Plays this worker's streams all at once, each chunk sent when its last sample is due
    /// at `speed` times real time.
    fn read_paced(&self, mine: &[usize], speed: f64) {
        let started_at = Instant::now();
        // When a payload is due: a chunk when its last sample would have been acquired,
        // anything else at once.
        // Stream k of n starts k/n of a chunk late, as independent monitors would: chunks
        // of all streams falling due at the same instant would arrive in bursts.
        let n = mine.len() as f64;
        let due_at = |body: &Body, k: usize| match body {
            Body::Chunk(c) if c.fs > 0.0 => {
                let phase = k as f64 / n * c.len() as f64;
                started_at + Duration::from_secs_f64((c.end() as f64 + phase) / c.fs / speed)
            }
            // A beat (from a beats table) is due when its window has ended.
            Body::Beat(b) if b.fs > 0.0 => {
                let end = (b.sample + b.after as u64 + 1) as f64 + k as f64 / n * 0.1 * b.fs;
                started_at + Duration::from_secs_f64(end / b.fs / speed)
            }
            _ => Instant::now(),
        };
        // Per stream: its reader and the payload read ahead, waiting to be due.
        let mut open: Vec<Option<(Box<dyn StreamReader>, Body)>> = Vec::with_capacity(mine.len());
        // (due, index into `mine`), the earliest first.
        let mut queue = BinaryHeap::new();
        for (k, &j) in mine.iter().enumerate() {
            let mut started = false;
            let first = (|| {
                let mut reader = self.start(j)?;
                started = true;
                Ok(reader.next().map_err(Stop::Stream)?.map(|body| (reader, body)))
            })();
            match first {
                Ok(Some((reader, body))) => {
                    queue.push(Reverse((due_at(&body, k), k)));
                    open.push(Some((reader, body)));
                }
                Ok(None) => {
                    open.push(None);
                    if !self.close(j, started, Ok(())) {
                        return;
                    }
                }
                Err(stop) => {
                    open.push(None);
                    if !self.close(j, started, Err(stop)) {
                        return;
                    }
                }
            }
        }
        while let Some(Reverse((at, k))) = queue.pop() {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let j = mine[k];
            let Some((mut reader, body)) = open[k].take() else {
                continue;
            };
            let result = self
                .send(self.route_offset + j as u64, body)
                .and_then(|()| reader.next().map_err(Stop::Stream));
            match result {
                Ok(Some(next)) => {
                    queue.push(Reverse((due_at(&next, k), k)));
                    open[k] = Some((reader, next));
                }
                Ok(None) => {
                    if !self.close(j, true, Ok(())) {
                        return;
                    }
                }
                Err(stop) => {
                    if !self.close(j, true, Err(stop)) {
                        return;
                    }
                }
            }
        }
    }
}

/// Wraps a transform as a timely operator holding one step per stream.
fn transform_operator<'scope>(
    input: MessageStream<'scope>,
    full_name: String,
    transform: Arc<dyn Transform>,
    stats: Arc<RunStats>,
) -> MessageStream<'scope> {
    let scope = input.scope();
    input.unary(
        Exchange::new(|m: &Message| m.route),
        &full_name.clone(),
        move |_, info| {
            let activator = scope.activator_for(info.address);
            // While a step holds output for later (a batch waiting for its delay), the
            // capability of the input that left it waiting, to emit it with when it is due.
            let mut held: Option<Capability<u64>> = None;
            let mut steps: HashMap<String, Box<dyn Step>> = HashMap::new();
            // Streams this transform failed on and aborted; their later messages are dropped.
            let mut aborted: HashSet<String> = HashSet::new();
            // The route of each open stream: a step may emit other streams' payloads (the model
            // transform's batches span the streams of a worker), and each keeps its own route.
            let mut routes: HashMap<String, u64> = HashMap::new();
            // What each open stream said of itself when it started, for its step.
            let mut metas: HashMap<String, Vec<(String, String)>> = HashMap::new();
            // A transform that takes beats (model, explain, normalize) makes no new ones: what it
            // emits, even when a stream's end flushes it, is not counted again.
            let mut takes_beats = false;
            let mut out = Vec::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for Message { route, body } in data.drain(..) {
                        let stream = body.stream().to_owned();
                        routes.insert(stream.clone(), route);
                        if aborted.contains(&stream) {
                            if matches!(body, Body::End { .. } | Body::Abort { .. }) {
                                aborted.remove(&stream);
                            }
                            continue;
                        }
                        takes_beats |= matches!(body, Body::Beat(_));
                        // Predictions made by this step (a model) are counted and timed.
                        let predicted_before = usize::from(matches!(&body, Body::Beat(b) if b.prediction.is_some()));
                        let began = Instant::now();
                        let result = match body {
                            Body::Start { ref meta, .. } => {
                                metas.insert(stream.clone(), meta.clone());
                                out.push(body);
                                Ok(())
                            }
                            // Events travel with their stream down to the sinks (the
                            // alarms, which take them, are a dataflow of their own).
                            Body::Event(_) => {
                                out.push(body);
                                Ok(())
                            }
                            Body::Abort { .. } => {
                                steps.remove(&stream);
                                metas.remove(&stream);
                                out.push(body);
                                Ok(())
                            }
                            Body::End { .. } => {
                                metas.remove(&stream);
                                let finished = match steps.remove(&stream) {
                                    Some(mut step) => step.finish(&mut out),
                                    None => Ok(()),
                                };
                                out.push(body);
                                finished
                            }
                            body => (|| {
                                let step = match steps.entry(stream.clone()) {
                                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                                    std::collections::hash_map::Entry::Vacant(e) => {
                                        let mut step = transform.open(&body)?;
                                        if let Some(meta) = metas.get(&stream) {
                                            step.start(meta);
                                        }
                                        e.insert(step)
                                    }
                                };
                                step.process(body, &mut out)
                            })(),
                        };
                        if let Err(e) = result {
                            let reason = format!("{e:#}");
                            steps.remove(&stream);
                            out.clear();
                            if stats.stream_failed(format!("{full_name}: stream {stream}: {reason}")) {
                                aborted.insert(stream.clone());
                                session.give(Message {
                                    route,
                                    body: Body::Abort { stream, reason },
                                });
                            }
                            continue;
                        }
                        if !takes_beats {
                            let beats = out.iter().filter(|b| matches!(b, Body::Beat(_))).count();
                            stats.counts.beats.fetch_add(beats as u64, Ordering::Relaxed);
                        }
                        if stats.timed {
                            stats.counts.observe_stage(&full_name, began.elapsed().as_secs_f64());
                        }
                        record_predictions(&stats, &mut out, predicted_before);
                        for body in out.drain(..) {
                            let route = routes.get(body.stream()).copied().unwrap_or(route);
                            session.give(Message { route, body });
                        }
                        if aborted.contains(&stream) || !steps.contains_key(&stream) {
                            routes.remove(&stream);
                        }
                    }
                    drop(session);
                    if transform.waits() {
                        if let Some(c) = cap.retain_least(0) {
                            if held.as_ref().is_none_or(|h| h.time() > c.time()) {
                                held = Some(c);
                            }
                        }
                    }
                });
                // Emit what has waited long enough, and come back when the next is due.
                let Some(cap) = held.take() else { return };
                let mut due: Option<Duration> = None;
                let mut session = output.session(&cap);
                for (stream, step) in steps.iter_mut() {
                    match step.poll(&mut out) {
                        Ok(next) => {
                            due = match (due, next) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            }
                        }
                        Err(e) => stats.fail(format!("{full_name}: stream {stream}: {e:#}")),
                    }
                    record_predictions(&stats, &mut out, 0);
                    for body in out.drain(..) {
                        let route = routes
                            .get(body.stream())
                            .copied()
                            .unwrap_or_else(|| stream_hash(body.stream()));
                        session.give(Message { route, body });
                    }
                }
                drop(session);
                if let Some(due) = due {
                    activator.activate_after(due);
                    held = Some(cap);
                }
            }
        },
    )
}

/// Counts the predictions a step made (those it emitted beyond the one it took) and records,
/// once per beat, the latency from its completing chunk's arrival to its prediction.
fn record_predictions(stats: &RunStats, out: &mut [Body], predicted_before: usize) {
    let now = Instant::now();
    let mut predicted = 0usize;
    for body in out.iter_mut() {
        if let Body::Beat(beat) = body {
            if beat.prediction.is_some() {
                predicted += 1;
                if let Some(arrival) = beat.arrival.take().filter(|_| stats.timed) {
                    stats
                        .counts
                        .observe_prediction_latency(now.duration_since(arrival).as_secs_f64());
                }
            }
        }
    }
    stats
        .counts
        .predictions
        .fetch_add(predicted.saturating_sub(predicted_before) as u64, Ordering::Relaxed);
}

/// Wraps a global transform: everything goes to worker 0, into one step, which is finished
/// once all input has arrived. Emitted payloads keep their stream's route.
fn global_operator<'scope>(
    input: MessageStream<'scope>,
    full_name: String,
    transform: Arc<dyn Transform>,
    stats: Arc<RunStats>,
) -> MessageStream<'scope> {
    input.unary_frontier(
        Exchange::new(|_: &Message| 0),
        &full_name.clone(),
        move |capability, _| {
            let mut capability = Some(capability);
            let mut step: Option<Box<dyn Step>> = None;
            let mut routes: HashMap<String, u64> = HashMap::new();
            let mut out = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|_, data| {
                    for Message { route, body } in data.drain(..) {
                        routes.insert(body.stream().to_owned(), route);
                        let result = match step.as_mut() {
                            Some(s) => s.process(body, &mut out),
                            None => transform.open(&body).and_then(|mut s| {
                                let r = s.process(body, &mut out);
                                step = Some(s);
                                r
                            }),
                        };
                        if let Err(e) = result {
                            // A global step's failure concerns every stream: the run fails.
                            stats.fail(format!("{full_name}: {e:#}"));
                        }
                    }
                });
                if frontier.is_empty() {
                    if let Some(cap) = capability.take() {
                        if let Some(mut s) = step.take() {
                            if let Err(e) = s.finish(&mut out) {
                                stats.fail(format!("{full_name}: {e:#}"));
                            }
                        }
                        let mut session = output.session(&cap);
                        for body in out.drain(..) {
                            let route = routes
                                .get(body.stream())
                                .copied()
                                .unwrap_or_else(|| stream_hash(body.stream()));
                            session.give(Message { route, body });
                        }
                    }
                }
            }
        },
    )
}
