//! A one-line progress bar with ETA on stderr (redrawn with `\r` on a terminal; one line per
//! tenth of the run otherwise, so logs stay short).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    terminal: bool,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { total, done: 0, start: Instant::now(), terminal: std::io::stderr().is_terminal() }
    }

    pub fn tick(&mut self) {
        self.done += 1;
        let step = (self.total / 10).max(1);
        if !self.terminal && !self.done.is_multiple_of(step) && self.done != self.total {
            return;
        }
        let line = render(self.done, self.total, self.start.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal { write!(err, "\r{line}") } else { writeln!(err, "{line}") };
        if self.terminal && self.done == self.total {
            let _ = writeln!(err);
        }
    }
}

fn render(done: usize, total: usize, elapsed: Duration) -> String {
    const WIDTH: usize = 30;
    let fraction = if total == 0 { 1.0 } else { done as f64 / total as f64 };
    let filled = (fraction * WIDTH as f64).round() as usize;
    let eta = if done == 0 { "?".to_string() } else { clock(elapsed.mul_f64((total - done) as f64 / done as f64)) };
    format!(
        "[{}{}] {done}/{total} {:3.0}%  elapsed {}  ETA {eta}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        fraction * 100.0,
        clock(elapsed)
    )
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_eta_scales_the_elapsed_time() {
        let line = super::render(1, 4, std::time::Duration::from_secs(10));
        assert!(line.contains("1/4") && line.contains(" 25%") && line.contains("ETA 0:30"), "{line}");
    }
}
