//! The access log: one line per request, formatted here and handed whole to a writer thread of
//! its own (a non-blocking writer: a request never waits for the terminal or the pipe, and when
//! the writer falls [`ACCESS_BUFFER_LINES`] behind, lines are dropped rather than requests
//! slowed).
//!
//! Rule: a line costs its formatting and one channel send, nothing more. It does not go through
//! `tracing` (an event there passes every layer's filter, a field visitor and `Debug` per
//! field: at 40,000 requests a second that was a tenth of a small request's instructions), so
//! the line is written directly, in the process's log format: as JSON, the same object a
//! `tracing` event would make (`timestamp`, `level`, `message`, the fields, `target`:
//! `"access"`); as text, the time, `access:` and the fields as `name=value`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// The `target` every access line carries (in JSON, the key that tells them from log lines).
pub const TARGET: &str = "access";

/// Access lines the writer may fall behind before it drops lines.
const ACCESS_BUFFER_LINES: usize = 64 * 1024;

/// The process's access log, once installed ([`install`]); absent, nothing is written.
static WRITER: OnceLock<Writer> = OnceLock::new();

struct Writer {
    lines: NonBlocking,
    format: Format,
}

/// The line's format: the process's log format (`MAPLE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The object a `tracing` JSON event would make.
    Json,
    /// The time, `access:` and `name=value` fields.
    Text,
}

/// Starts the writer thread (stdout) and makes it this process's access log; the first call
/// wins (tests start several stacks in one process). The guard, dropped, writes what is
/// queued and stops the thread; `None` when an earlier call installed the log.
pub(super) fn install(format: Format) -> Option<WorkerGuard> {
    let mut guard = None;
    WRITER.get_or_init(|| {
        let (lines, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(ACCESS_BUFFER_LINES)
            .thread_name("access-log")
            // The thread writes every line it finds queued, then flushes: one write call for
            // a burst of lines instead of one per line.
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            ));
        guard = Some(worker);
        Writer { lines, format }
    });
    guard
}

/// Whether access lines are written in this process: build none when not.
pub fn enabled() -> bool {
    WRITER.get().is_some()
}

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    /// Written in milliseconds, to the microsecond.
    Millis(Duration),
    Ip(IpAddr),
}

/// Writes one access line with `fields` in order, leaving out those without a value; nothing
/// when the access log is off.
pub fn write(fields: &[(&'static str, Option<Value<'_>>)]) {
    let Some(writer) = WRITER.get() else {
        return;
    };
    thread_local! {
        /// This thread's line buffer and its handle on the writer (made once per thread).
        static LOCAL: RefCell<Option<(String, NonBlocking)>> = const { RefCell::new(None) };
    }
    LOCAL.with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        let (line, lines) =
            local.get_or_insert_with(|| (String::with_capacity(512), writer.lines.clone()));
        line.clear();
        format(line, writer.format, SystemTime::now(), fields);
        // One write is one message to the writer thread: the line arrives whole.
        let _ = lines.write_all(line.as_bytes());
    });
}

/// The line for `fields` at `now`, ending in a newline.
fn format(
    line: &mut String,
    format: Format,
    now: SystemTime,
    fields: &[(&'static str, Option<Value<'_>>)],
) {
    let present = fields
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)));
    match format {
        Format::Json => {
            line.push_str("{\"timestamp\":\"");
            timestamp(line, now);
            line.push_str("\",\"level\":\"INFO\",\"message\":\"request\"");
            for (name, value) in present {
                line.push_str(",\"");
                line.push_str(name);
                line.push_str("\":");
                json_value(line, value);
            }
            line.push_str(",\"target\":\"");
            line.push_str(TARGET);
            line.push_str("\"}\n");
        }
        Format::Text => {
            timestamp(line, now);
            line.push(' ');
            line.push_str(TARGET);
            line.push_str(": request");
            for (name, value) in present {
                line.push(' ');
                line.push_str(name);
                line.push('=');
                json_value(line, value);
            }
            line.push('\n');
        }
    }
}

fn json_value(line: &mut String, value: Value<'_>) {
    match value {
        Value::Str(s) => json_string(line, s),
        Value::U64(n) => digits(line, n, 1),
        Value::Millis(elapsed) => {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            digits(line, micros / 1000, 1);
            line.push('.');
            digits(line, micros % 1000, 3);
        }
        Value::Ip(ip) => {
            let _ = write!(line, "\"{ip}\"");
        }
    }
}

/// `n` in decimal, zero-padded to `width` digits (`core::fmt`'s padding machinery costs more
/// than the line it pads).
fn digits(line: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut at = buf.len();
    while n > 0 || buf.len() - at < width {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    line.extend(buf[at..].iter().map(|&b| char::from(b)));
}

/// `s` as a JSON string, quotes included.
fn json_string(line: &mut String, s: &str) {
    line.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                '\t' => line.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(line, "\\u{:04x}", u32::from(c));
                }
                c => line.push(c),
            }
        }
    }
    line.push('"');
}

/// `now` in RFC 3339, UTC, to the microsecond (`2026-12-05T01:20:29.123456Z`), as `tracing`'s
/// own lines have it.
fn timestamp(line: &mut String, now: SystemTime) {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let (year, month, day) = civil_date(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400).unsigned_abs();
    let parts = [
        (year.unsigned_abs(), 4, '-'),
        (month.unsigned_abs(), 2, '-'),
        (day.unsigned_abs(), 2, 'T'),
        (of_day / 3600, 2, ':'),
        (of_day / 60 % 60, 2, ':'),
        (of_day % 60, 2, '.'),
        (u64::from(since.subsec_micros()), 6, 'Z'),
    ];
    for (n, width, then) in parts {
        digits(line, n, width);
        line.push(then);
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format_: Format, fields: &[(&'static str, Option<Value<'_>>)]) -> String {
        let mut line = String::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_433_629_123_456);
        format(&mut line, format_, at, fields);
        line
    }

    #[test]
    fn digits_are_padded_to_their_width() {
        let mut line = String::new();
        for (n, width) in [(0, 1), (7, 3), (1234, 2), (u64::MAX, 1), (0, 6)] {
            digits(&mut line, n, width);
            line.push(' ');
        }
        assert_eq!(line, "0 007 1234 18446744073709551615 000000 ");
    }

    #[test]
    fn dates_are_the_calendars() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(20_792), (2026, 12, 5));
        assert_eq!(civil_date(47_541), (2100, 3, 1));
    }

    #[test]
    fn a_json_line_is_the_object_a_tracing_event_would_make() {
        let fields = [
            ("method", Some(Value::Str("POST"))),
            ("route", Some(Value::Str("/v1/characters/{name}/likes"))),
            ("status", Some(Value::U64(202))),
            (
                "duration_ms",
                Some(Value::Millis(Duration::from_nanos(1_234_567))),
            ),
            ("bytes", None),
            ("source", Some(Value::Str("odd \"quote\" \\ and\nline"))),
            ("client", Some(Value::Ip(IpAddr::from([203, 0, 113, 9])))),
        ];
        let text = line(Format::Json, &fields);
        assert!(text.ends_with('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(
            parsed,
            serde_json::json!({
                "timestamp": "2026-12-05T01:20:29.123456Z",
                "level": "INFO",
                "message": "request",
                "method": "POST",
                "route": "/v1/characters/{name}/likes",
                "status": 202,
                "duration_ms": 1.234,
                "source": "odd \"quote\" \\ and\nline",
                "client": "203.0.113.9",
                "target": "access",
            })
        );
    }

    #[test]
    fn a_text_line_is_the_time_and_the_fields() {
        let fields = [
            ("status", Some(Value::U64(404))),
            ("route", Some(Value::Str("unmatched"))),
            ("trace_id", None),
            (
                "duration_ms",
                Some(Value::Millis(Duration::from_micros(12))),
            ),
        ];
        assert_eq!(
            line(Format::Text, &fields),
            "2026-12-05T01:20:29.123456Z access: request status=404 route=\"unmatched\" \
             duration_ms=0.012\n"
        );
    }
}
