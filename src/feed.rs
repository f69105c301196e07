//! The queue between a source's reader thread and its worker: bounded, and when it is full
//! either the reader waits (`block`) or the oldest queued chunk is dropped (`drop_oldest`).
//! Drops are counted and reported downstream as `dropped` events, so that sinks see the gap.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Select, Sender, TryRecvError};
use ecgflow_operators::{Event, EventPhase};

use crate::components::Overflow;
use crate::message::{Body, Message};

/// The reader's end.
pub enum FeedSender {
    Block(Sender<Message>),
    DropOldest(Arc<DropQueue>),
}

/// The worker's end.
pub enum FeedReceiver {
    Block(Receiver<Message>),
    DropOldest(Arc<DropQueue>),
}

/// A queue of `capacity` messages under `overflow`.
pub fn feed(overflow: Overflow, capacity: usize) -> (FeedSender, FeedReceiver) {
    match overflow {
        Overflow::Block => {
            let (tx, rx) = bounded(capacity.max(1));
            (FeedSender::Block(tx), FeedReceiver::Block(rx))
        }
        Overflow::DropOldest => {
            let queue = Arc::new(DropQueue::new(capacity));
            (FeedSender::DropOldest(queue.clone()), FeedReceiver::DropOldest(queue))
        }
    }
}

impl FeedSender {
    /// Queues a message; returns the samples dropped to make room (always 0 under `block`),
    /// or `None` when the worker is gone.
    pub fn send(&self, message: Message) -> Option<u64> {
        match self {
            FeedSender::Block(tx) => tx.send(message).ok().map(|()| 0),
            FeedSender::DropOldest(queue) => queue.push(message),
        }
    }
}

impl Drop for FeedSender {
    fn drop(&mut self) {
        if let FeedSender::DropOldest(queue) = self {
            queue.closed.store(true, Ordering::SeqCst);
        }
    }
}

/// The reader has finished and everything it sent has been taken.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

impl FeedReceiver {
    /// The next message, `None` when there is none yet.
    pub fn try_recv(&self) -> Result<Option<Message>, Closed> {
        match self {
            FeedReceiver::Block(rx) => match rx.try_recv() {
                Ok(m) => Ok(Some(m)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(TryRecvError::Disconnected) => Err(Closed),
            },
            FeedReceiver::DropOldest(queue) => queue.pop(),
        }
    }
}

/// Waits up to `timeout` for any of `feeds` to have something (without taking it).
pub fn wait_any<'a>(feeds: impl Iterator<Item = &'a FeedReceiver>, timeout: Duration) {
    let mut select = Select::new();
    for feed in feeds {
        match feed {
            FeedReceiver::Block(rx) => {
                select.recv(rx);
            }
            // A drop queue has no wake-up: poll it at `timeout`.
            FeedReceiver::DropOldest(_) => {}
        }
    }
    let _ = select.ready_timeout(timeout);
}

/// A bounded queue that drops its oldest chunk when full. Stream starts, ends and events
/// are never dropped (they are few); only chunks count against the capacity. Drops are
/// remembered per stream (one entry each, so memory stays bounded) and handed to the
/// worker as a `dropped` event just before that stream's next message.
pub struct DropQueue {
    state: Mutex<QueueState>,
    capacity: usize,
    closed: AtomicBool,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Message>,
    chunks: usize,
    /// Per stream: the route, the event to report (its first dropped sample), and the
    /// samples dropped since.
    dropped: HashMap<String, (u64, Event, u64)>,
}

impl DropQueue {
    pub fn new(capacity: usize) -> Self {
        DropQueue {
            state: Mutex::new(QueueState::default()),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `message`, dropping the oldest chunk when `capacity` chunks are waiting.
    /// Returns the number of samples dropped.
    fn push(&self, message: Message) -> Option<u64> {
        let mut state = self.state.lock().ok()?;
        let mut dropped = 0;
        if matches!(message.body, Body::Chunk(_)) {
            if state.chunks >= self.capacity {
                let oldest = state.items.iter().position(|m| matches!(m.body, Body::Chunk(_)));
                if let Some(Message {
                    route,
                    body: Body::Chunk(chunk),
                }) = oldest.and_then(|i| state.items.remove(i))
                {
                    state.chunks -= 1;
                    dropped = chunk.len() as u64;
                    let entry = state.dropped.entry(chunk.stream.clone()).or_insert_with(|| {
                        let event = Event {
                            stream: chunk.stream.clone(),
                            kind: "dropped".to_owned(),
                            phase: EventPhase::Instant,
                            sample: chunk.start,
                            fs: chunk.fs,
                            patient: None,
                            ward: None,
                            evidence: String::new(),
                        };
                        (route, event, 0)
                    });
                    entry.2 += dropped;
                }
            }
            state.chunks += 1;
        }
        state.items.push_back(message);
        Some(dropped)
    }

    fn pop(&self) -> Result<Option<Message>, Closed> {
        // Read `closed` before looking: a message pushed before closing is then seen.
        let closed = self.closed.load(Ordering::SeqCst);
        let Ok(mut state) = self.state.lock() else {
            return Err(Closed);
        };
        let Some(front) = state.items.front() else {
            return if closed { Err(Closed) } else { Ok(None) };
        };
        // A stream's drops are reported before its next message.
        let stream = front.body.stream().to_owned();
        if let Some((route, mut event, samples)) = state.dropped.remove(&stream) {
            event.evidence = format!("{samples} samples dropped: the dataflow fell behind the live source");
            return Ok(Some(Message {
                route,
                body: Body::Event(event),
            }));
        }
        let message = state.items.pop_front().expect("front exists");
        if matches!(message.body, Body::Chunk(_)) {
            state.chunks -= 1;
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgflow_operators::Chunk;

    fn chunk(start: u64) -> Message {
        Message {
            route: 0,
            body: Body::Chunk(Chunk::new("s", 360.0, start, vec!["a".into()], vec![vec![0.0; 36]])),
        }
    }

    /// A reader 10× faster than its worker: `block` loses nothing; `drop_oldest` never holds
    /// more than its capacity, and what arrives plus what was dropped is what was sent.
    fn run(overflow: Overflow) -> (u64, u64, u64, usize) {
        let (tx, rx) = feed(overflow, 8);
        let queue = match &rx {
            FeedReceiver::DropOldest(q) => Some(q.clone()),
            FeedReceiver::Block(_) => None,
        };
        let reader = std::thread::spawn(move || {
            let mut dropped = 0;
            for i in 0..400 {
                dropped += tx.send(chunk(i * 36)).expect("worker alive");
                std::thread::sleep(Duration::from_micros(50));
            }
            dropped
        });
        let (mut arrived, mut reported, mut most) = (0u64, 0u64, 0usize);
        loop {
            if let Some(q) = &queue {
                most = most.max(q.state.lock().unwrap().chunks);
            }
            match rx.try_recv() {
                Ok(Some(Message {
                    body: Body::Chunk(c), ..
                })) => {
                    arrived += c.len() as u64;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Ok(Some(Message {
                    body: Body::Event(e), ..
                })) => {
                    assert_eq!(e.kind, "dropped");
                    reported += e.evidence.split(' ').next().unwrap().parse::<u64>().unwrap();
                }
                Ok(Some(_)) => {}
                Ok(None) => std::thread::sleep(Duration::from_micros(100)),
                Err(Closed) => break,
            }
        }
        (arrived, reported, reader.join().unwrap(), most)
    }

    #[test]
    fn block_loses_nothing() {
        let (arrived, reported, dropped, _) = run(Overflow::Block);
        assert_eq!((arrived, reported, dropped), (400 * 36, 0, 0));
    }

    #[test]
    fn drop_oldest_stays_bounded_and_counts_every_drop() {
        let (arrived, reported, dropped, most) = run(Overflow::DropOldest);
        assert!(dropped > 0, "the reader is 10× faster: something must be dropped");
        assert_eq!(reported, dropped, "every dropped sample is reported downstream");
        assert_eq!(arrived + dropped, 400 * 36);
        assert!(most <= 8, "held {most} chunks, capacity 8");
    }
}
