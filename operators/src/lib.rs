//! Processing steps for electrocardiograms. Each step is a plain struct with state that
//! processes one chunk at a time, so that it works the same over a whole record and over a
//! live stream. Nothing here knows about the engine, timely or TOML. An error that states its
//! cause in its message does not also return it from `source()` (a `{:#}` chain would say it
//! twice).

pub mod alarms;
pub mod augment;
pub mod cwt;
pub mod explain;
pub mod filter;
pub mod metrics;
pub mod models;
pub mod normalize;
pub mod plot;
pub mod quality;
pub mod render;
pub mod resample;
pub mod rng;
pub mod rpeaks;
pub mod running_median;
pub mod segment;
pub mod smote;
pub mod split;
pub mod synthetic;
pub mod train;
pub mod types;

pub use types::{Annotation, Beat, Chunk, DecidedBy, Event, EventPhase, Prediction, Tensor};
