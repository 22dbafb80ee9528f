//! Rendering: aligned tables for people, JSON and YAML for scripts.

use serde::Serialize;

use crate::cli::Format;

/// Called when writing to stdout failed: a reader that went away ends the process quietly
/// (status 0, as `head` expects of its writer); anything else is reported.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// Prints `value` as JSON or YAML; returns false for the table format (the caller prints).
pub fn structured<T: Serialize>(format: Format, value: &T) -> bool {
    match format {
        Format::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
            true
        }
        Format::Yaml => {
            out!("{}", serde_saphyr::to_string(value).unwrap_or_default());
            true
        }
        Format::Table => false,
    }
}

/// Prints one row per item (`row` makes its cells) under headers, with aligned columns.
pub fn table_of<T>(headers: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(headers, &rows);
}

/// Prints rows under headers with aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// "3s ago"-style age of a Unix-ms timestamp.
pub fn age(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let now = apitap_common::time::now_ms();
    let secs = now.saturating_sub(ms) / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

pub fn duration_between(start_ms: u64, end_ms: u64) -> String {
    if start_ms == 0 {
        return "-".into();
    }
    let end = if end_ms == 0 {
        apitap_common::time::now_ms()
    } else {
        end_ms
    };
    let ms = end.saturating_sub(start_ms);
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}s", ms / 1000)
    }
}
