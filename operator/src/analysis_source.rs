//! Where canary analysis gets its numbers: the API server pods' own `/metrics`, scraped by pod IP (or, for
//! tests and clusters where pods are not reachable directly, a fixed list of URLs the operator's
//! administrator sets with `FAXBOT_ANALYSIS_METRICS_URLS`), kept as a short history per config so each check
//! looks at the increase over its window; or, with `analysis.prometheus`, Prometheus' query API, which
//! keeps the history itself ([`MetricsSource::read_prometheus`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::canary::prometheus::{self, Metric};
use crate::canary::sample::{self, Counters};
use crate::names;

/// One scrape of every source: source (pod uid or URL) → revision → counters.
pub type Scrape = BTreeMap<String, BTreeMap<String, Counters>>;

/// How many scrape targets each revision had and how many did not answer (pod scraping only; the fixed
/// URLs carry no revision before they answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    /// revision → (targets, failed).
    pub by_revision: BTreeMap<String, (usize, usize)>,
}

impl Reach {
    /// Every one of `revisions` unreachable (Prometheus did not answer).
    pub fn none_of<'a>(revisions: impl IntoIterator<Item = &'a str>) -> Reach {
        Reach { by_revision: revisions.into_iter().map(|r| (r.to_string(), (1, 1))).collect() }
    }

    /// Whether every pod of `revision` that should have been scraped failed to answer.
    pub fn unreachable(&self, revision: &str) -> bool {
        self.by_revision.get(revision).is_some_and(|(targets, failed)| *targets > 0 && failed == targets)
    }
}

/// At most this many scrapes run at once, each bounded by the client's timeout: a check takes about one
/// timeout however many pods there are (they ran one after the other, 5 s each, inside a reconcile slot).
const SCRAPE_CONCURRENCY: usize = 16;

/// Largest `/metrics` page read from a pod. The API server's is a few dozen KiB (its series are bounded by
/// routes, statuses and revisions), so this is far above what a healthy pod sends.
const MAX_METRICS_BYTES: u64 = 4 * 1024 * 1024;

/// Scrapes and remembers.
pub struct MetricsSource {
    http: reqwest::Client,
    urls: Vec<String>,
    history: Mutex<HashMap<String, VecDeque<(Duration, Scrape)>>>,
}

impl MetricsSource {
    /// Pod scraping, or the fixed `urls` when not empty.
    pub fn new(urls: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        MetricsSource { http, urls, history: Mutex::new(HashMap::new()) }
    }

    /// One `/metrics` page, read up to [`MAX_METRICS_BYTES`]: a pod's answer is outside input, and up to
    /// [`SCRAPE_CONCURRENCY`] are read at once. A larger page is dropped, like a pod that did not answer.
    async fn fetch(&self, url: &str) -> Option<BTreeMap<String, Counters>> {
        let response = self.http.get(url).send().await.ok()?;
        let body = read_limited(response).await.ok()?;
        Some(sample::parse(&String::from_utf8_lossy(&body)))
    }

    /// The window's counters per revision from Prometheus: every metric's query at once, each bounded by
    /// the client's timeout and [`MAX_METRICS_BYTES`]. Any query that fails fails the whole reading (a
    /// check on half the numbers could pass a canary whose errors were in the missing half).
    pub async fn read_prometheus(
        &self,
        source: &prometheus::Source,
        namespace: &str,
        config: &str,
        window: Duration,
    ) -> Result<BTreeMap<String, Counters>, String> {
        let url = format!("{}/api/v1/query", source.address);
        let answers = futures_util::future::join_all(source.queries(namespace, config, window).into_iter().map(
            |(metric, query)| {
                let url = url.clone();
                async move {
                    let url = reqwest::Url::parse_with_params(&url, &[("query", query.as_str())])
                        .map_err(|e| format!("{metric:?}: the address is not a URL: {e}"))?;
                    let response =
                        self.http.get(url).send().await.map_err(|e| format!("{metric:?}: {}", e.without_url()))?;
                    // Prometheus answers a bad query with 400 and the JSON error: read it either way.
                    let body = read_limited(response).await.map_err(|e| format!("{metric:?}: {e}"))?;
                    let samples = prometheus::parse_answer(&body).map_err(|e| format!("{metric:?}: {e}"))?;
                    Ok::<(Metric, Vec<prometheus::Sample>), String>((metric, samples))
                }
            },
        ))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, String>>()?;
        Ok(prometheus::counters(&answers))
    }

    /// Scrapes the API pods of config `name` in `ns` (ready pods with an IP), or the fixed URLs, concurrently.
    /// Sources that do not answer are left out of this scrape and counted in the [`Reach`].
    pub async fn scrape(&self, client: &Client, ns: &str, name: &str) -> Result<(Scrape, Reach), kube::Error> {
        use futures_util::StreamExt;
        // (source, url, revision if known)
        let mut targets: Vec<(String, String, Option<String>)> = Vec::new();
        if self.urls.is_empty() {
            let selector =
                names::selector_labels(name).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            for pod in pods.list(&ListParams::default().labels(&selector)).await?.items {
                let status = pod.status.as_ref();
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if let (true, Some(ip)) = (ready, status.and_then(|s| s.pod_ip.clone())) {
                    let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    let revision = pod.metadata.labels.as_ref().and_then(|l| l.get(names::REVISION_LABEL)).cloned();
                    targets.push((uid, format!("http://{host}:{}/metrics", crate::build::API_PORT), revision));
                }
            }
        } else {
            targets.extend(self.urls.iter().map(|u| (u.clone(), u.clone(), None)));
        }
        let results: Vec<_> = futures_util::stream::iter(targets)
            .map(|(source, url, revision)| async move {
                let counters = self.fetch(&url).await;
                (source, revision, counters)
            })
            .buffer_unordered(SCRAPE_CONCURRENCY)
            .collect()
            .await;
        let mut scrape = Scrape::new();
        let mut reach = Reach::default();
        for (source, revision, counters) in results {
            let answered = counters.is_some();
            if let Some(counters) = counters {
                scrape.insert(source, counters);
            } else {
                tracing::debug!(namespace = %ns, config = %name, "a metrics source did not answer");
            }
            if let Some(revision) = revision {
                let entry = reach.by_revision.entry(revision).or_default();
                entry.0 += 1;
                entry.1 += usize::from(!answered);
            }
        }
        Ok((scrape, reach))
    }

    /// Records `scrape` for config `key` at `now` and returns the per-revision increase over `window`:
    /// against the newest earlier scrape at least `window` old, or the oldest one kept while the window
    /// fills. A source new since the baseline counts whole; a restarted one counts from its restart.
    pub fn window(&self, key: &str, now: Duration, window: Duration, scrape: Scrape) -> BTreeMap<String, Counters> {
        let Ok(mut history) = self.history.lock() else { return BTreeMap::new() };
        let entries = history.entry(key.to_string()).or_default();
        let baseline = entries
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_sub(*at) >= window)
            .or_else(|| entries.front())
            .map(|(_, s)| s.clone());
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        if let Some(base) = &baseline {
            for (source, revisions) in &scrape {
                for (revision, counters) in revisions {
                    let before = match base.get(source) {
                        Some(known) => known.get(revision).cloned().unwrap_or_default(),
                        // A pod that appeared after the baseline counts from the first time it was scraped, not
                        // from its start: its first requests open its database and provider connections, and a
                        // revision is not judged on that (a healthy canary was rolled back for it on real pods).
                        // Seen for the first time now: nothing counts yet.
                        None => entries
                            .iter()
                            .find_map(|(_, s)| s.get(source))
                            .and_then(|r| r.get(revision).cloned())
                            .unwrap_or_else(|| counters.clone()),
                    };
                    out.entry(revision.clone()).or_default().add(&counters.since(&before));
                }
            }
        }
        entries.push_back((now, scrape));
        // Keep what a window can still need, plus one older entry as its baseline.
        while entries.len() > 2 && entries.get(1).is_some_and(|(at, _)| now.saturating_sub(*at) >= window) {
            entries.pop_front();
        }
        while entries.len() > 1000 {
            entries.pop_front();
        }
        out
    }

    /// Forgets a config's history (its canary ended).
    pub fn forget(&self, key: &str) {
        if let Ok(mut history) = self.history.lock() {
            history.remove(key);
        }
    }
}

/// An answer's body, up to [`MAX_METRICS_BYTES`] (also while streaming, without a declared length). Error
/// statuses are read too (their bodies explain them); only a pod scrape treats them as no answer.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let status = response.status();
    if response.content_length().is_some_and(|n| n > MAX_METRICS_BYTES) {
        return Err(format!("answer larger than {MAX_METRICS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        if (body.len() + chunk.len()) as u64 > MAX_METRICS_BYTES {
            tracing::warn!(limit = MAX_METRICS_BYTES, "a metrics answer was larger than the limit; ignored");
            return Err(format!("answer larger than {MAX_METRICS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if !(status.is_success() || status.is_client_error() && body.starts_with(b"{")) {
        return Err(format!("HTTP {status}"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(source: &str, revision: &str, requests: f64) -> Scrape {
        let counters = Counters { requests, ..Default::default() };
        BTreeMap::from([(source.to_string(), BTreeMap::from([(revision.to_string(), counters)]))])
    }

    #[test]
    fn windows_look_back_at_least_the_window_and_survive_restarts() {
        let s = MetricsSource::new(vec![]);
        let secs = Duration::from_secs;
        assert!(s.window("c", secs(0), secs(60), scrape("pod-a", "r1", 100.0)).is_empty(), "no baseline yet");
        let w = s.window("c", secs(30), secs(60), scrape("pod-a", "r1", 130.0));
        assert_eq!(w["r1"].requests, 30.0, "the window fills from the oldest scrape");
        let w = s.window("c", secs(60), secs(60), scrape("pod-a", "r1", 200.0));
        assert_eq!(w["r1"].requests, 100.0, "exactly one window back");
        let w = s.window("c", secs(90), secs(60), scrape("pod-a", "r1", 20.0));
        assert_eq!(w["r1"].requests, 20.0, "the pod restarted: its new count is the increase");
        s.forget("c");
        assert!(s.window("c", secs(100), secs(60), scrape("pod-a", "r1", 30.0)).is_empty());
    }

    #[test]
    fn a_new_pod_counts_from_its_first_scrape_not_from_its_start() {
        let s = MetricsSource::new(vec![]);
        let secs = Duration::from_secs;
        let both = |a: f64, b: f64| {
            let mut x = scrape("pod-a", "r1", a);
            x.extend(scrape("pod-b", "r2", b));
            x
        };
        s.window("c", secs(0), secs(60), scrape("pod-a", "r1", 100.0));
        // pod-b (the canary) shows up with 40 requests from its start: none of them count yet.
        let w = s.window("c", secs(30), secs(60), both(130.0, 40.0));
        assert_eq!((w["r1"].requests, w["r2"].requests), (30.0, 0.0));
        // From then on its increase counts, measured from that first scrape.
        let w = s.window("c", secs(45), secs(60), both(150.0, 55.0));
        assert_eq!((w["r1"].requests, w["r2"].requests), (50.0, 15.0));
        // Once a baseline holds it, the baseline decides, as for any pod.
        s.window("c", secs(90), secs(60), both(200.0, 100.0));
        let w = s.window("c", secs(120), secs(60), both(230.0, 130.0));
        assert_eq!((w["r1"].requests, w["r2"].requests), (80.0, 75.0), "both from the scrape at 45 s");
    }

    /// Serves one `/metrics` page of `body_len` bytes per connection on loopback.
    async fn metrics_server(body_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let line = "faxbot_http_requests_total{revision=\"r1\",status=\"200\"} 1\n";
                let mut body = line.repeat(body_len / line.len() + 1).into_bytes();
                body.truncate(body_len.max(line.len()));
                // No Content-Length: the limit must hold while streaming, not only on a declared length.
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            }
        });
        format!("http://{addr}/metrics")
    }

    #[tokio::test]
    async fn a_metrics_page_beyond_the_limit_is_dropped_like_a_silent_pod() {
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let small = metrics_server(64).await;
        let (scrape, _) = MetricsSource::new(vec![small.clone()]).scrape(&client, "ns", "c").await.unwrap();
        assert!(scrape.contains_key(&small), "a normal page is read");
        let huge = metrics_server(usize::try_from(MAX_METRICS_BYTES).unwrap() + 1).await;
        let (scrape, _) = MetricsSource::new(vec![huge]).scrape(&client, "ns", "c").await.unwrap();
        assert!(scrape.is_empty(), "a page over the limit is not parsed");
    }
}
