//! Progress on a terminal: the running step's newest output line with its elapsed time, redrawn in place
//! on one status line, cleared before each plain progress line. Off a terminal nothing is drawn: the plain
//! progress lines are the whole record.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Output lines longer than this are cut on the status line (the log keeps them whole).
const FALLBACK_WIDTH: usize = 100;

#[derive(Default)]
struct State {
    label: String,
    started: Option<Instant>,
    /// Bytes after the last newline.
    partial: Vec<u8>,
    /// A status line is on screen.
    shown: bool,
}

/// The status line of the step being watched.
#[derive(Default)]
pub struct StatusLine {
    state: Mutex<State>,
}

impl StatusLine {
    /// A chunk of `label`'s output: the newest complete (or, failing that, partial) line is shown.
    pub fn chunk(&self, label: &str, bytes: &[u8]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.label != label || s.started.is_none() {
            s.label = label.to_string();
            s.started = Some(Instant::now());
            s.partial.clear();
        }
        s.partial.extend_from_slice(bytes);
        let text = String::from_utf8_lossy(&s.partial).into_owned();
        let mut lines = text.split(['\n', '\r']).filter(|l| !l.trim().is_empty());
        let newest = lines.next_back().unwrap_or("").to_string();
        // Keep only what follows the last line break: the next chunk may finish that line.
        if let Some(at) = s.partial.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
            s.partial.drain(..=at);
        }
        if s.partial.len() > 4096 {
            s.partial.clear();
        }
        let elapsed = s.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let head = format!("{} {elapsed:.1}s │ ", s.label);
        let room = width().saturating_sub(head.chars().count() + 1);
        let line: String = reprod::text::inert_line(newest.trim_end())
            .chars()
            .take(room)
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{head}{line}");
        let _ = err.flush();
        s.shown = true;
    }

    /// Clears the status line, if one is shown, so that a plain line can be printed.
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            if s.shown {
                let _ = write!(std::io::stderr(), "\r\x1b[K");
                s.shown = false;
            }
        }
    }
}

/// The terminal's width, from the terminal, else `COLUMNS`, else [`FALLBACK_WIDTH`].
fn width() -> usize {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stderr()) {
        if size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(FALLBACK_WIDTH)
}
