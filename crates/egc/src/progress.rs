//! A progress bar for long verifies and builds: on a terminal only (stderr), never on a
//! pipe, never with a machine format, and only once the work has taken longer than a
//! moment, so a quick run prints nothing extra.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before its bar appears.
pub const DELAY: Duration = Duration::from_millis(800);

/// A bar over `total` steps; hidden unless stderr is a terminal and `human` is set.
pub struct Progress {
    bar: Option<ProgressBar>,
}

/// Whether a bar may be drawn: stderr is a terminal, and `EGC_NO_PROGRESS` is unset.
pub fn enabled(human: bool) -> bool {
    human
        && std::io::stderr().is_terminal()
        && std::env::var_os("EGC_NO_PROGRESS").is_none_or(|v| v.is_empty())
}

impl Progress {
    pub fn new(total: usize, what: &str, human: bool) -> Progress {
        let bar = enabled(human).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(u64::try_from(total).unwrap_or(u64::MAX)),
                ProgressDrawTarget::hidden(),
            );
            if let Ok(style) =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(what.to_string());
            // Revealed by a timer, so one long step shows the bar too.
            let delayed = bar.clone();
            std::thread::spawn(move || {
                std::thread::sleep(DELAY);
                if !delayed.is_finished() {
                    delayed.set_draw_target(ProgressDrawTarget::stderr());
                    delayed.enable_steady_tick(Duration::from_millis(120));
                }
            });
            bar
        });
        Progress { bar }
    }

    pub fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Removes the bar, leaving the terminal as it was.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
