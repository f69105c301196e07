//! The explanation picture: the beat over its attribution, drawn by the same function as
//! the `png` sink's pictures (`ecgflow_operators::plot::explanation_picture`), as PNG bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use ecgflow_operators::explain::Explanation;
use ecgflow_operators::plot::explanation_picture;

/// The explanation's picture as PNG bytes (the chart writes files: it goes through a
/// temporary file, removed at once).
pub fn explanation_png(e: &Explanation) -> std::io::Result<Vec<u8>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("ecgflow-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("explanation-{}.png", NEXT.fetch_add(1, Ordering::Relaxed)));
    let drawn = explanation_picture(&path, e).map_err(std::io::Error::other);
    let bytes = drawn.and_then(|_| std::fs::read(&path));
    let _ = std::fs::remove_file(&path);
    bytes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn explanation(stream: &str, sample: u64) -> Explanation {
        let window: Vec<f32> = (0..259)
            .map(|i| ((i as f32 - 90.0) / 20.0).exp().recip().min(1.0))
            .collect();
        serde_json::from_value(json!({
            "subject": {"beat": {
                "stream": stream, "fs": 360.0, "sample": sample, "leads": ["MLII"], "before": 90, "after": 168,
                "window": window, "rr_prev": 0.8, "rr_next": 0.8, "rr_local": 0.8, "symbol": "V",
                "prediction": {"model": "m", "version": "1", "class": "V", "probabilities": [0.1, 0.1, 0.7, 0.05, 0.05]},
            }},
            "class_name": "V",
            "attribution": {
                "method": "gradcam", "class": 2, "probability": 0.7,
                "per_sample": (0..259).map(|i| i as f32 / 259.0).collect::<Vec<_>>(),
                "features": [], "base_value": null, "fit_r2": null,
            },
        }))
        .expect("an explanation")
    }

    #[test]
    fn the_picture_is_the_png_sinks_chart_as_bytes() {
        let e = explanation("syn000", 1234);
        let png = explanation_png(&e).expect("drawn");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
