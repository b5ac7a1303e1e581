//! Progress shown on stderr for long work; nothing is drawn when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A spinner that appears only if the work takes longer than a delay.
pub struct Spinner {
    bar: ProgressBar,
    reveal: Option<tokio::task::JoinHandle<()>>,
}

/// Starts a spinner with `message` that shows up after `delay`. Needs a Tokio runtime.
pub fn spinner_after(delay: Duration, message: &'static str) -> Spinner {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        return Spinner { bar, reveal: None };
    }
    let show = bar.clone();
    let reveal = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        show.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
        );
        show.set_message(message);
        show.enable_steady_tick(Duration::from_millis(120));
    });
    Spinner {
        bar,
        reveal: Some(reveal),
    }
}

impl Spinner {
    /// Stops and erases the spinner.
    pub fn finish(self) {
        if let Some(reveal) = self.reveal {
            reveal.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// A progress bar over `total` units with `message`.
pub fn bar(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {percent:>3}% {human_pos}/{human_len} rows ({elapsed}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
