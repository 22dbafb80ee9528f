//! Query-string parsing shared by all `/v1` endpoints.
//!
//! Parameters are parsed by hand (rather than with `web::Query`) so that every
//! rejection is a JSON 400 naming the offending parameter, and so unknown
//! parameters such as `api_key` are simply ignored.

use super::error::ApiError;

/// Default page size of every paginated endpoint.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest page size accepted; more is a 400 rather than a silent clamp, so a
/// misconfigured client is noticed.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes a raw (percent-encoded) query string; never fails.
    pub fn parse(query: &str) -> Self {
        let pairs = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self { pairs }
    }

    /// The first value given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `min..=max`, or `default` when absent.
    pub fn u64_in(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let reason = || format!("expected an integer between {min} and {max}, got {raw:?}");
        let value: u64 = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_param(name, reason()))?;
        if value < min || value > max {
            return Err(ApiError::bad_param(name, reason()));
        }
        Ok(value)
    }

    /// A page size parameter (`limit`, `per_page`): 1..=1000, default 100.
    pub fn page_size(&self, name: &'static str) -> Result<u64, ApiError> {
        self.u64_in(name, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    }
}

/// The inclusive id window a request may see: `from_id..=to_id` intersected
/// with the dataset. Shards of a load each ask for their own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// `from_id` as the client sent it, kept for next-page links.
    pub from_id: Option<u64>,
    /// `to_id` as the client sent it, kept for next-page links.
    pub to_id: Option<u64>,
    /// `since_id` (exclusive; empty means none): incremental loads ask for what is newer
    /// than their watermark.
    pub since_id: Option<u64>,
    /// First id served (inclusive).
    pub first: u64,
    /// Last id served (inclusive); below `first` when the window is empty.
    pub last: u64,
}

impl IdRange {
    /// Reads `from_id`/`to_id` (both optional, inclusive, `from_id >= 1`,
    /// `to_id >= from_id`) and clips them to a dataset of `size` records.
    pub fn from_params(params: &Params, size: u64) -> Result<Self, ApiError> {
        let from_id = match params.get("from_id") {
            Some(_) => Some(params.u64_in("from_id", 1, 1, u64::MAX)?),
            None => None,
        };
        let to_id = match params.get("to_id") {
            Some(_) => Some(params.u64_in("to_id", 0, from_id.unwrap_or(1), u64::MAX)?),
            None => None,
        };
        let since_id = match params.get("since_id") {
            Some(v) if !v.is_empty() => Some(params.u64_in("since_id", 0, 0, u64::MAX)?),
            _ => None,
        };
        Ok(Self {
            from_id,
            to_id,
            since_id,
            first: from_id
                .unwrap_or(1)
                .max(since_id.map_or(0, |s| s.saturating_add(1))),
            last: to_id.unwrap_or(u64::MAX).min(size),
        })
    }

    /// Number of records in the window.
    pub fn len(&self) -> u64 {
        if self.last >= self.first {
            self.last - self.first + 1
        } else {
            0
        }
    }

    /// Whether the window holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the page that skips `skip` records of the window and takes at
    /// most `take`; empty past the end.
    pub fn page(&self, skip: u64, take: u64) -> std::ops::RangeInclusive<u64> {
        if skip >= self.len() || take == 0 {
            // An empty inclusive range; iterating it yields nothing.
            return std::ops::RangeInclusive::new(1, 0);
        }
        let start = self.first + skip;
        let end = start.saturating_add(take - 1).min(self.last);
        start..=end
    }

    /// Ids of the page of records strictly after id `after`, at most `take`.
    pub fn page_after(&self, after: u64, take: u64) -> std::ops::RangeInclusive<u64> {
        let skip = if after >= self.first {
            after - self.first + 1
        } else {
            0
        };
        self.page(skip, take)
    }

    /// `&from_id=..&to_id=..` for the bounds the client gave, so next-page
    /// links stay inside the same shard.
    pub fn query_suffix(&self) -> String {
        let mut suffix = String::new();
        if let Some(from) = self.from_id {
            suffix.push_str(&format!("&from_id={from}"));
        }
        if let Some(to) = self.to_id {
            suffix.push_str(&format!("&to_id={to}"));
        }
        if let Some(since) = self.since_id {
            suffix.push_str(&format!("&since_id={since}"));
        }
        suffix
    }
}
