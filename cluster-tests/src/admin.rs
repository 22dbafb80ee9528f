//! Reading a node's admin server the way a load balancer or Prometheus would: health
//! endpoints with their status and JSON, and `/metrics` parsed into samples.

use std::collections::BTreeMap;

use serde_json::Value;

/// `GET http://{addr}{path}`: the status code and the body (JSON when it parses, else text).
pub async fn get(addr: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let resp = client().get(format!("http://{addr}{path}")).send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// One scrape of `/metrics`.
pub async fn scrape(addr: &str) -> anyhow::Result<Scrape> {
    let resp = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "/metrics: {}", resp.status());
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "/metrics content type {content_type:?}"
    );
    Scrape::parse(&resp.text().await?)
}

/// No connection reuse: a test may kill the node between two requests.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// The samples of one exposition in the Prometheus text format.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Scrape {
    /// Parses the text format (the subset the nodes write: no timestamps, escaped label
    /// values).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut out = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| anyhow::anyhow!("bad TYPE line {line:?}"))?;
                out.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples.push(parse_sample(line)?);
        }
        Ok(out)
    }

    /// The sum over every sample of `name` whose labels include `labels`; 0 if none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The value of the unlabelled sample `name`, if present.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let bad = || anyhow::anyhow!("bad sample line {line:?}");
    let (series, value) = line.rsplit_once(' ').ok_or_else(bad)?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| bad())?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').ok_or_else(bad)?;
            (name.to_string(), parse_labels(body).ok_or_else(bad)?)
        }
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, c) => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.insert(key.to_string(), value);
        s = rest[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_labels_and_escapes() {
        let s = Scrape::parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n\
             b{host=\"x\\\"y\",status=\"2xx\"} 2\nb{host=\"z\",status=\"5xx\"} 1\n\
             h_bucket{le=\"+Inf\"} 4\n",
        )
        .unwrap();
        assert_eq!(s.value("a_total"), Some(3.0));
        assert_eq!(s.types["a_total"], "counter");
        assert_eq!(s.sum("b", &[]), 3.0);
        assert_eq!(s.sum("b", &[("host", "x\"y")]), 2.0);
        assert_eq!(s.sum("h_bucket", &[("le", "+Inf")]), 4.0);
    }
}
