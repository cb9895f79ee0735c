//! Progress bars on stderr when it is a terminal; silence otherwise.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry_oci::{NoProgress, Progress};

use crate::args::OutputArgs;

/// A progress sink for `output`: bars when stderr is a terminal and output is
/// neither JSON nor quiet; otherwise only warnings on stderr (none when
/// quiet).
pub fn for_output(output: &OutputArgs) -> Arc<dyn Progress> {
    if output.quiet {
        Arc::new(NoProgress)
    } else if output.json || !std::io::stderr().is_terminal() {
        Arc::new(WarningsOnly)
    } else {
        Arc::new(Bars::default())
    }
}

/// No bars, no notes: only what the user must hear, one line each.
struct WarningsOnly;

impl Progress for WarningsOnly {
    fn warn(&self, message: &str) {
        eprintln!("ferry: {message}");
    }
}

/// indicatif bars: one per phase, bytes with rate and ETA.
#[derive(Default)]
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    items: Mutex<Option<(u64, u64)>>,
}

impl Progress for Bars {
    fn start(&self, phase: &str, items: u64, total_bytes: u64) {
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        bar.set_message(format!("0/{items} blobs"));
        bar.set_length(total_bytes);
        *self.bar.lock().expect("progress lock") = Some(bar);
        self.items
            .lock()
            .expect("progress lock")
            .replace((0, items));
    }

    fn bytes(&self, n: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(n);
        }
    }

    fn item_done(&self) {
        let mut items = self.items.lock().expect("progress lock");
        if let Some((done, total)) = items.as_mut() {
            *done += 1;
            if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
                bar.set_message(format!("{done}/{total} blobs"));
            }
        }
    }

    fn note(&self, message: &str) {
        match self.bar.lock().expect("progress lock").as_ref() {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn warn(&self, message: &str) {
        self.note(&format!("ferry: {message}"));
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
