//! The HTTP server of the page (tiny_http): the page and its assets, the JSON API, the
//! server-sent events, the explanation pictures, `/metrics` and `/healthz`.
//!
//! Requests are answered on a thread each (at most [`MAX_REQUESTS`] at once); each page's
//! event stream holds a thread for as long as the page stays (at most
//! [`ServerConfig::max_clients`]). Nothing is logged per request: addresses, paths and
//! counts are all the server ever reports (in `/metrics`).

use std::io::Cursor as IoCursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::auth::{authorized, percent_decode};
use crate::hub::Hub;
use crate::{chart, sse, MonitorError};

/// Requests answered at once at most (event streams not counted); more get 503.
pub const MAX_REQUESTS: usize = 64;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// Extra Prometheus text served before the hub's own metrics (the run's counters).
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// How to serve.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port; [`Server::addr`] tells which).
    pub addr: SocketAddr,
    /// The access token; every request but `/healthz` and `/static/...` must carry it.
    /// Required unless `addr` is a loopback address.
    pub token: Option<String>,
    /// The run's own metrics, served with the hub's in `/metrics`.
    pub metrics: Option<MetricsFn>,
    /// Pages connected for events at once at most; more get 503.
    pub max_clients: usize,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            token: None,
            metrics: None,
            max_clients: 32,
        }
    }
}

/// A running server; stops when dropped (or by [`Server::stop`]).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    http: Arc<tiny_http::Server>,
    hub: Arc<Hub>,
    accept: Option<JoinHandle<()>>,
}

struct Context {
    hub: Arc<Hub>,
    token: Option<String>,
    metrics: Option<MetricsFn>,
    max_clients: usize,
    stop: Arc<AtomicBool>,
    busy: AtomicUsize,
}

impl Server {
    /// Checks the address rule, binds and starts answering.
    pub fn start(config: ServerConfig, hub: Arc<Hub>) -> Result<Server, MonitorError> {
        crate::auth::check_bind(&config.addr, config.token.as_deref())?;
        let http = tiny_http::Server::http(config.addr).map_err(|e| MonitorError::Bind {
            addr: config.addr,
            message: e.to_string(),
        })?;
        let addr = http.server_addr().to_ip().unwrap_or(config.addr);
        let http = Arc::new(http);
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Arc::new(Context {
            hub: hub.clone(),
            token: config.token,
            metrics: config.metrics,
            max_clients: config.max_clients,
            stop: stop.clone(),
            busy: AtomicUsize::new(0),
        });
        let accept = {
            let http = http.clone();
            std::thread::Builder::new()
                .name("monitor-http".into())
                .spawn(move || accept_loop(&http, &ctx))
                .map_err(|e| MonitorError::Bind {
                    addr,
                    message: e.to_string(),
                })?
        };
        Ok(Server {
            addr,
            stop,
            http,
            hub,
            accept: Some(accept),
        })
    }

    /// The address listened on (with the port chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops answering and closes the event streams (within about a second).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
        self.hub.wake_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(http: &tiny_http::Server, ctx: &Arc<Context>) {
    while !ctx.stop.load(Ordering::SeqCst) {
        let Ok(request) = http.recv() else {
            continue; // unblocked (stop), or a failed connection
        };
        if ctx.stop.load(Ordering::SeqCst) {
            break;
        }
        ctx.hub.counters.http_requests.fetch_add(1, Ordering::Relaxed);
        if ctx.busy.load(Ordering::SeqCst) >= MAX_REQUESTS {
            let _ = request.respond(text(503, "busy, try again\n"));
            continue;
        }
        ctx.busy.fetch_add(1, Ordering::SeqCst);
        let ctx2 = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("monitor-request".into())
            .spawn(move || {
                handle(&ctx2, request);
            });
        if spawned.is_err() {
            ctx.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// A response with the headers every answer carries.
fn response(status: u16, content_type: &str, body: Vec<u8>) -> Response<IoCursor<Vec<u8>>> {
    Response::from_data(body)
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        // The token may sit in the page's URL: never hand it to another site.
        .with_header(header("Referrer-Policy", "no-referrer"))
}

fn text(status: u16, body: &str) -> Response<IoCursor<Vec<u8>>> {
    response(status, "text/plain; charset=utf-8", body.as_bytes().to_vec())
}

fn json(status: u16, body: String) -> Response<IoCursor<Vec<u8>>> {
    response(status, "application/json", body.into_bytes())
}

fn handle(ctx: &Context, request: Request) {
    let finished = || ctx.busy.fetch_sub(1, Ordering::SeqCst);
    let url = request.url().to_owned();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url.as_str(), None),
    };
    let method = request.method().clone();
    if !matches!(method, Method::Get | Method::Head) {
        let _ = request.respond(text(405, "only GET\n").with_header(header("Allow", "GET, HEAD")));
        finished();
        return;
    }
    // Public: the probe, and the page's code (no data in either).
    let public = match path {
        "/healthz" => Some(text(200, "ok\n")),
        "/static/app.js" => Some(response(
            200,
            "text/javascript; charset=utf-8",
            APP_JS.as_bytes().to_vec(),
        )),
        "/static/style.css" => Some(response(200, "text/css; charset=utf-8", STYLE_CSS.as_bytes().to_vec())),
        "/favicon.ico" => Some(response(204, "image/x-icon", Vec::new())),
        _ => None,
    };
    if let Some(r) = public {
        let _ = request.respond(r);
        finished();
        return;
    }
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    if !authorized(ctx.token.as_deref(), authorization.as_deref(), query) {
        ctx.hub.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let r = text(
            401,
            "an access token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN in the URL\n",
        )
        .with_header(header("WWW-Authenticate", "Bearer realm=\"ecgflow\""));
        let _ = request.respond(r);
        finished();
        return;
    }
    if path == "/events" {
        finished(); // an event stream is counted among the clients instead
        if method != Method::Get {
            let _ = request.respond(text(405, "only GET\n").with_header(header("Allow", "GET")));
            return;
        }
        events(ctx, request, query);
        return;
    }
    let r = route(ctx, path);
    let _ = request.respond(r);
    finished();
}

fn route(ctx: &Context, path: &str) -> Response<IoCursor<Vec<u8>>> {
    match path {
        "/" | "/index.html" => {
            response(200, "text/html; charset=utf-8", INDEX_HTML.as_bytes().to_vec()).with_header(header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 base-uri 'none'; frame-ancestors 'none'",
            ))
        }
        "/metrics" => {
            let mut body = ctx.metrics.as_ref().map(|m| m()).unwrap_or_default();
            body.push_str(&ctx.hub.render_prometheus());
            response(200, "text/plain; version=0.0.4; charset=utf-8", body.into_bytes())
        }
        "/api/streams" => json(200, serde_json::to_string(&ctx.hub.snapshot()).unwrap_or_default()),
        _ => {
            let Some(rest) = path.strip_prefix("/api/streams/") else {
                return text(404, "not found\n");
            };
            let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(name) = percent_decode(name).filter(|n| !n.is_empty()) else {
                return text(400, "bad stream name\n");
            };
            match what {
                "" => match ctx.hub.detail(&name) {
                    Some(d) => json(200, serde_json::to_string(&d).unwrap_or_default()),
                    None => text(404, "no such stream\n"),
                },
                "explanation.png" => explanation(ctx, &name),
                _ => text(404, "not found\n"),
            }
        }
    }
}

fn explanation(ctx: &Context, stream: &str) -> Response<IoCursor<Vec<u8>>> {
    let Some((seq, e, picture)) = ctx.hub.latest_explanation(stream) else {
        return text(404, "no explanation for this stream yet\n");
    };
    let picture = match picture {
        Some(p) => p,
        None => match chart::explanation_png(&e) {
            Ok(bytes) => {
                let bytes = Arc::new(bytes);
                ctx.hub.keep_picture(stream, seq, bytes.clone());
                bytes
            }
            Err(_) => return text(500, "the picture could not be drawn\n"),
        },
    };
    response(200, "image/png", picture.to_vec())
}

fn events(ctx: &Context, request: Request, query: Option<&str>) {
    let counters = &ctx.hub.counters;
    let clients = counters.sse_clients.fetch_add(1, Ordering::SeqCst);
    if clients as usize >= ctx.max_clients {
        counters.sse_clients.fetch_sub(1, Ordering::SeqCst);
        counters.sse_refused.fetch_add(1, Ordering::Relaxed);
        let _ = request.respond(text(503, "too many pages connected\n"));
        return;
    }
    let stream = query
        .and_then(|q| crate::auth::query_param(q, "stream"))
        .filter(|s| !s.is_empty());
    let mut writer = request.into_writer();
    sse::serve_client(&ctx.hub, &mut *writer, stream, &ctx.stop);
    counters.sse_clients.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgflow_operators::Chunk;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    fn start(token: Option<&str>) -> (Server, Arc<Hub>) {
        let hub = Arc::new(Hub::new());
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.token = token.map(str::to_owned);
        config.metrics = Some(Arc::new(|| "run_metric_total 7\n".to_owned()));
        (Server::start(config, hub.clone()).expect("starts"), hub)
    }

    /// Status, headers (lower-cased names) and body of a request over a fresh connection.
    fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, head.to_ascii_lowercase(), body)
    }

    fn dechunk(mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
            data = &data[line_end + 4 + size..];
        }
    }

    #[test]
    fn routes_answer_over_a_real_connection() {
        let (server, hub) = start(None);
        let addr = server.addr();
        assert_ne!(addr.port(), 0);
        hub.start("p 1/a", &[("patient".into(), "x".into())]);
        hub.chunk(
            &Chunk::new("p 1/a", 360.0, 0, vec!["II".into()], vec![vec![0.25; 720]]),
            10.0,
        );
        hub.beat(&crate::hub::tests::beat("p 1/a", 400, Some("V")));

        let (status, head, body) = get(addr, "/", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/html"));
        assert!(head.contains("content-security-policy"));
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("/static/app.js") && html.contains("id=\"wave\""));
        for (path, kind) in [("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")] {
            let (status, head, body) = get(addr, path, &[]);
            assert_eq!(status, 200, "{path}");
            assert!(head.contains(kind), "{head}");
            assert!(!body.is_empty());
        }
        let (status, _, body) = get(addr, "/healthz", &[]);
        assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));

        let (status, head, body) = get(addr, "/api/streams", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["streams"][0]["stream"], "p 1/a");
        assert_eq!(v["streams"][0]["patient"], "x");
        assert_eq!(v["streams"][0]["classes"]["V"], 1);

        let (status, _, body) = get(addr, "/api/streams/p%201%2Fa", &[]);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["wave"]["samples"].as_array().unwrap().len(), 720);
        assert_eq!(v["window_beats"][0]["class"], "V");
        assert_eq!(get(addr, "/api/streams/nope", &[]).0, 404);
        assert_eq!(get(addr, "/api/streams/p%201%2Fa/explanation.png", &[]).0, 404);
        hub.explanation(&crate::chart::tests::explanation("p 1/a", 500));
        let (status, head, png) = get(addr, "/api/streams/p%201%2Fa/explanation.png", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("image/png"));
        assert_eq!(&png[..4], b"\x89PNG");
        // Drawn once, then served from the hub.
        assert_eq!(get(addr, "/api/streams/p%201%2Fa/explanation.png", &[]).2, png);

        let (status, head, body) = get(addr, "/metrics", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"));
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with("run_metric_total 7\n"), "{body}");
        assert!(body.contains("ecgflow_monitor_streams 1\n"), "{body}");
        assert!(body.contains("ecgflow_monitor_samples_total 720\n"), "{body}");
        assert_eq!(get(addr, "/nope", &[]).0, 404);
        server.stop();
    }

    #[test]
    fn a_token_guards_everything_but_the_probe_and_the_code() {
        let (server, _hub) = start(Some("s3cret"));
        let addr = server.addr();
        for path in ["/", "/api/streams", "/metrics", "/events", "/api/streams/a"] {
            let (status, head, _) = get(addr, path, &[]);
            assert_eq!(status, 401, "{path}");
            assert!(head.contains("www-authenticate: bearer"), "{head}");
            assert_eq!(get(addr, &format!("{path}?token=wrong"), &[]).0, 401, "{path}");
            assert_eq!(get(addr, path, &["Authorization: Bearer wrong"]).0, 401, "{path}");
        }
        assert_eq!(get(addr, "/", &["Authorization: Bearer s3cret"]).0, 200);
        assert_eq!(get(addr, "/api/streams?token=s3cret", &[]).0, 200);
        assert_eq!(get(addr, "/metrics", &["Authorization: Bearer s3cret"]).0, 200);
        assert_eq!(get(addr, "/healthz", &[]).0, 200);
        assert_eq!(get(addr, "/static/app.js", &[]).0, 200);
        server.stop();
    }

    #[test]
    fn a_public_address_without_a_token_is_refused() {
        let hub = Arc::new(Hub::new());
        let config = ServerConfig::new("0.0.0.0:0".parse().unwrap());
        let e = Server::start(config, hub).err().expect("refused");
        assert!(matches!(e, MonitorError::TokenRequired { .. }), "{e}");
    }

    #[test]
    fn the_event_stream_sends_summaries_and_the_chosen_streams_samples() {
        let (server, hub) = start(Some("t0ken"));
        hub.chunk(&Chunk::new("a", 360.0, 0, vec!["II".into()], vec![vec![0.5; 36]]), 10.0);
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /events?stream=a&token=t0ken HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(s);
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pushed = false;
        while Instant::now() < deadline {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            text.push_str(&line);
            if !pushed && text.contains("event: wave") {
                pushed = true;
                hub.chunk(
                    &Chunk::new("a", 360.0, 36, vec!["II".into()], vec![vec![0.75; 36]]),
                    10.0,
                );
            }
            if text.contains("\"start\":36") {
                break;
            }
        }
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("content-type: text/event-stream") || text.contains("Content-Type: text/event-stream"));
        assert!(text.contains("retry: 2000\n"));
        assert!(text.contains("event: streams\ndata: {"), "{text}");
        assert!(text.contains("\"reset\":true"), "{text}");
        assert!(text.contains("\"start\":36,"), "the new samples follow: {text}");
        assert_eq!(hub.counters.sse_clients.load(Ordering::SeqCst), 1);
        drop(reader);
        server.stop();
        // The page's thread notices the stop (or the closed connection) within a second.
        let deadline = Instant::now() + Duration::from_secs(5);
        while hub.counters.sse_clients.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(hub.counters.sse_clients.load(Ordering::SeqCst), 0);
    }
}
