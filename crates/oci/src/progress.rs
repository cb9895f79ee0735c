//! A sink for progress reports, shared by pack, unpack and verify so the
//! binary can draw one kind of progress bar for all of them.

/// Receives progress while long work runs. Implementations must be cheap:
/// `bytes` is called for every chunk.
pub trait Progress: Send + Sync {
    /// The work is planned: `total_bytes` over `items` blobs will move.
    fn start(&self, _phase: &str, _items: u64, _total_bytes: u64) {}
    /// `n` more bytes moved.
    fn bytes(&self, _n: u64) {}
    /// One blob is complete.
    fn item_done(&self) {}
    /// A human-readable note (a step begins, a retry happens).
    fn note(&self, _message: &str) {}
    /// Something the user should hear even without progress bars (a
    /// partial pack that is not reused, and why). The binary prints it on
    /// stderr unless told to be quiet; by default it is a [`note`].
    ///
    /// [`note`]: Progress::note
    fn warn(&self, message: &str) {
        self.note(message)
    }
    /// The phase is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
